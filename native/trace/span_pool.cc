#include "trace/span_pool.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>

#include "trace/span_prefetch.h"

namespace djtrace {
namespace {

// Larger spans are rare (events, long attribute lists); keeping them would hold memory for
// the pool's lifetime for little gain.
constexpr size_t kMaxKeptAttributes = 64;
constexpr size_t kMaxKeptEvents = 8;
constexpr size_t kMaxKeptName = 512;

bool WorthKeeping(const SpanData& span) {
  return span.attributes.capacity() <= kMaxKeptAttributes &&
         span.events.capacity() <= kMaxKeptEvents && span.links.empty() &&
         span.name.capacity() <= kMaxKeptName;
}

}  // namespace

#if defined(__x86_64__) && defined(__GLIBCXX__)
// A field added to SpanData must be reset in ClearForReuse too (then update this size).
static_assert(sizeof(SpanData) == 304, "SpanData changed: reset the new field in ClearForReuse");
#endif

void ClearForReuse(SpanData& span) noexcept {
  span.trace_id = {};
  span.span_id = {};
  span.parent_span_id = {};
  span.trace_state.clear();
  span.flags = 0;
  span.name.clear();
  span.kind = SpanKind::kInternal;
  span.start_time_unix_nano = 0;
  span.end_time_unix_nano = 0;
  span.attributes.clear();
  span.shared_attributes.reset();
  span.dropped_attributes_count = 0;
  span.events.clear();
  span.dropped_events_count = 0;
  span.links.clear();
  span.dropped_links_count = 0;
  span.status_code = StatusCode::kUnset;
  span.status_message.clear();
  span.scope.reset();
  span.resource.reset();
}

SpanPool& SpanPool::Global() {
  static SpanPool* pool = [] {
    auto* p = new SpanPool();  // never destroyed: threads may return spans during exit
    pthread_atfork([] { Global().PrepareFork(); }, [] { Global().AfterFork(); },
                   [] { Global().AfterFork(); });
    return p;
  }();
  return *pool;
}

void SpanPool::Return(std::vector<SpanPtr>& spans) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& span : spans) {
      if (returned_.size() >= kCapacity) break;
      if (span && WorthKeeping(*span)) {
        try {
          returned_.push_back(std::move(span));
        } catch (...) {
          break;  // out of memory: the rest are freed below
        }
      }
    }
  }
  spans.clear();  // what was not kept
}

namespace {

// This thread's spans taken from the shared list, handed out one at a time. Behind a call
// that is not inlined, so that Take looks the thread_local up once (each lookup is a call in a
// shared library), not at every use.
[[gnu::noinline]] std::vector<SpanPtr>& ThreadSpans() {
  thread_local std::vector<SpanPtr> local;
  return local;
}

// A returned span was last written by the export worker, so its memory sits in the cache of
// the core that worker ran on: clearing it cold stalls on every line it touches, which took
// three quarters of SpanStarter::Start's samples in a time profile. The next spans to be handed out
// are therefore fetched ahead, one stage per Take (spans are taken tens of microseconds apart, time
// enough for each stage to arrive): the object itself, then the buffers it points to, then the
// blocks its attributes own (which clearing frees, writing their allocator headers).

// The string's heap block from its allocator header on (freeing it writes there), when it has
// one rather than the small buffer inside the string.
void PrefetchHeapString(const std::string& s) {
  constexpr uintptr_t kHeader = 16;  // glibc's chunk header before the block
  if (prefetch::OnHeap(s))
    prefetch::Line<prefetch::Intent::kWrite>(
        reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(s.data()) - kHeader));
}

// Stage 1: the object.
void PrefetchObject(const SpanData& span) { prefetch::Object<prefetch::Intent::kWrite>(span); }

// Stage 2: the buffers the object points to.
void PrefetchBuffers(const SpanData& span) {
  prefetch::AttributeList<prefetch::Intent::kWrite>(span);
  PrefetchHeapString(span.name);
  PrefetchHeapString(span.trace_state);
  PrefetchHeapString(span.status_message);
}

// Stage 3: the blocks the attributes own.
void PrefetchOwned(const SpanData& span) {
  for (const Attribute& a : span.attributes) {
    PrefetchHeapString(a.key);
    if (const auto* text = std::get_if<std::string>(&a.value)) PrefetchHeapString(*text);
  }
}

}  // namespace

SpanPtr SpanPool::Take() {
  std::vector<SpanPtr>& local = ThreadSpans();
  if (local.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n = std::min(kRefill, returned_.size());
    if (n) {
      local.reserve(kRefill);
      for (size_t i = returned_.size() - n; i < returned_.size(); ++i)
        local.push_back(std::move(returned_[i]));
      returned_.resize(returned_.size() - n);
    }
    for (size_t i = 1; i <= std::min<size_t>(3, local.size()); ++i)
      PrefetchObject(*local[local.size() - i]);
  }
  if (local.empty()) return std::make_unique<SpanData>();
  SpanPtr span = std::move(local.back());
  local.pop_back();
  // The spans handed out next, one stage each: local.back() is next, then the one before it.
  const size_t left = local.size();
  if (left >= 1) PrefetchOwned(*local[left - 1]);
  if (left >= 2) PrefetchBuffers(*local[left - 2]);
  if (left >= 3) PrefetchObject(*local[left - 3]);
  ClearForReuse(*span);  // on this thread: what it frees feeds this thread's allocations
  return span;
}

size_t SpanPool::SharedSize() {
  std::lock_guard<std::mutex> lock(mu_);
  return returned_.size();
}

}  // namespace djtrace
