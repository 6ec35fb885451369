#include "trace/span_pool.h"

#include <pthread.h>

#include <algorithm>

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
  }
  if (local.empty()) return std::make_unique<SpanData>();
  SpanPtr span = std::move(local.back());
  local.pop_back();
  ClearForReuse(*span);  // on this thread: what it frees feeds this thread's allocations
  return span;
}

size_t SpanPool::SharedSize() {
  std::lock_guard<std::mutex> lock(mu_);
  return returned_.size();
}

}  // namespace djtrace
