#include "trace/processor.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <set>
#include <unordered_map>

#include "trace/span_pool.h"
#include "trace/span_prefetch.h"

namespace djtrace {
namespace {

using Clock = std::chrono::steady_clock;

// Like opentelemetry-sdk's export processors, only sampled spans are exported; a span a
// sampler kept as RECORD_ONLY is for in-process processors alone.
bool Sampled(const SpanData& span) { return span.flags & 0x01u; }

// Every live batch processor, so that fork handlers can put each into a consistent state.
struct ForkRegistry {
  std::mutex mu;
  std::set<BatchSpanProcessor*> processors;
};

// The export worker is background work: as a SCHED_BATCH thread the kernel does not let it
// preempt the application thread that wakes it (a full batch), which would otherwise stall
// that request for the whole export on a busy machine. Its share of the CPU is unchanged.
void MarkBackgroundThread() {
#ifdef SCHED_BATCH
  sched_param param{};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);  // best effort
#endif
}

// How far ahead ExportBatch fetches the spans it is about to read: the objects first, then,
// once their fields have arrived, the attribute lists and the name they point to, then the
// strings those attributes own (which the encoder reads next).
constexpr size_t kObjectsAhead = 24;
constexpr size_t kBuffersAhead = 12;
constexpr size_t kOwnedAhead = 4;

// Stage 2: the attribute list and the name's characters.
void PrefetchBuffers(const SpanData& span) {
  prefetch::AttributeList<prefetch::Intent::kRead>(span);
  if (prefetch::OnHeap(span.name))
    prefetch::Block<prefetch::Intent::kRead>(span.name.data(), span.name.size());
}

// Stage 3: the characters of the attributes' keys and string values (of a long value, its start).
void PrefetchOwned(const SpanData& span) {
  for (const Attribute& a : span.attributes) {
    if (prefetch::OnHeap(a.key)) prefetch::Line<prefetch::Intent::kRead>(a.key.data());
    if (const auto* text = std::get_if<std::string>(&a.value); text && prefetch::OnHeap(*text))
      prefetch::Block<prefetch::Intent::kRead>(text->data(), std::min<size_t>(text->size(), 256));
  }
}

ForkRegistry& Registry() {
  static ForkRegistry* registry = [] {
    auto* r = new ForkRegistry();  // never destroyed: atfork handlers may run at exit
    pthread_atfork(
        [] {
          Registry().mu.lock();
          for (auto* p : Registry().processors) p->PrepareFork();
        },
        [] {
          for (auto* p : Registry().processors) p->AfterForkParent();
          Registry().mu.unlock();
        },
        [] {
          for (auto* p : Registry().processors) p->AfterForkChild();
          Registry().mu.unlock();
        });
    return r;
  }();
  return *registry;
}

}  // namespace

SimpleSpanProcessor::SimpleSpanProcessor(std::shared_ptr<SpanExporter> exporter,
                                         SpanTransform transform,
                                         std::chrono::milliseconds export_timeout)
    : exporter_(std::move(exporter)),
      transform_(std::move(transform)),
      export_timeout_(export_timeout) {}

void SimpleSpanProcessor::OnEnd(SpanPtr span) noexcept {
  if (!span || !Sampled(*span)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  FlattenAttributes(*span);
  if (transform_) transform_(*span);
  const SpanData* one[] = {span.get()};
  exporter_->Export(std::span<const SpanData* const>(one, 1), Clock::now() + export_timeout_);
}

void SimpleSpanProcessor::SetTransform(SpanTransform transform) {
  std::lock_guard<std::mutex> lock(mu_);
  transform_ = std::move(transform);
}

bool SimpleSpanProcessor::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return exporter_->ForceFlush(Clock::now() + timeout);
}

bool SimpleSpanProcessor::Shutdown(std::chrono::milliseconds) noexcept {
  exporter_->SetExiting(true);  // an export in flight under the lock gives up its retries
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return true;
  shutdown_ = true;
  exporter_->Shutdown();
  return true;
}

struct BatchSpanProcessor::Transform {
  SpanTransform apply;
  SharedAttributesCheck leaves_unchanged;  // may be empty: then every block is merged first
};

// The worker's verdicts on shared attribute blocks under its current transform: whether the
// transform leaves each block as it is. A block is asked about once, not with each of the many
// spans that share it. Verdicts are kept by address, with a weak reference: one whose block has
// been freed since is taken again, as another block may now sit at that address.
class BatchSpanProcessor::SharedVerdicts {
 public:
  bool Unchanged(const std::shared_ptr<const Attributes>& block,
                 const std::shared_ptr<const Transform>& transform) {
    if (transform != transform_) {
      // Held, so that a later transform cannot take this one's address unnoticed.
      transform_ = transform;
      seen_.clear();
    }
    auto it = seen_.find(block.get());
    if (it != seen_.end() && !it->second.block.expired()) return it->second.unchanged;
    bool unchanged = false;
    try {
      unchanged = transform->leaves_unchanged(*block);
    } catch (...) {
      unchanged = false;  // merged and transformed with the span, as without a check
    }
    try {
      if (seen_.size() >= kMaxVerdicts) seen_.clear();
      seen_[block.get()] = Verdict{block, unchanged};
    } catch (...) {  // out of memory: asked again next time
    }
    return unchanged;
  }

 private:
  static constexpr size_t kMaxVerdicts = 4096;
  struct Verdict {
    std::weak_ptr<const Attributes> block;
    bool unchanged = false;
  };
  std::shared_ptr<const Transform> transform_;
  std::unordered_map<const Attributes*, Verdict> seen_;
};

struct BatchSpanProcessor::State {
  std::shared_ptr<SpanExporter> exporter;
  BatchOptions options;
  // Shared so that the worker takes it without copying the functions on every wake-up.
  std::shared_ptr<const Transform> transform;

  std::mutex mu;
  std::condition_variable cv;        // wakes the worker
  std::condition_variable flush_cv;  // wakes ForceFlush callers
  std::vector<SpanPtr> queue;
  // Held by pointer so that a child after fork can forget the parent's thread.
  std::unique_ptr<std::thread> worker;
  bool stop = false;
  bool shutdown = false;
  bool exporter_needs_fork_reset = false;
  bool worker_idle = false;  // the worker waits for a first span, with no timer running
  uint64_t flush_requested = 0;
  uint64_t flush_completed = 0;

  std::atomic<uint64_t> spans_queued{0}, spans_dropped{0}, spans_exported{0}, spans_failed{0},
      batches_exported{0}, batches_failed{0};
};

BatchSpanProcessor::BatchSpanProcessor(std::shared_ptr<SpanExporter> exporter, BatchOptions options,
                                       SpanTransform transform)
    : state_(std::make_shared<State>()) {
  // A batch never exceeds the queue, as the official SDK requires of its settings.
  options.max_export_batch_size = std::clamp<uint32_t>(
      options.max_export_batch_size, 1, std::max<uint32_t>(options.max_queue_size, 1));
  state_->exporter = std::move(exporter);
  state_->options = options;
  if (transform)
    state_->transform = std::make_shared<const Transform>(Transform{std::move(transform), {}});
  state_->queue.reserve(std::min<uint32_t>(options.max_queue_size, 4096));
  std::lock_guard<std::mutex> lock(Registry().mu);
  Registry().processors.insert(this);
}

BatchSpanProcessor::~BatchSpanProcessor() {
  Shutdown(state_->options.export_timeout);
  std::lock_guard<std::mutex> lock(Registry().mu);
  Registry().processors.erase(this);
}

const BatchOptions& BatchSpanProcessor::options() const { return state_->options; }

void BatchSpanProcessor::SetTransform(SpanTransform transform,
                                      SharedAttributesCheck leaves_unchanged) {
  auto shared = transform ? std::make_shared<const Transform>(
                                Transform{std::move(transform), std::move(leaves_unchanged)})
                          : nullptr;
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->transform = std::move(shared);
}

void BatchSpanProcessor::StartWorkerLocked() {
  State& s = *state_;
  if (s.worker || s.shutdown) return;
  try {
    s.worker = std::make_unique<std::thread>(&BatchSpanProcessor::WorkerLoop, state_);
  } catch (...) {
    s.worker.reset();  // no thread: spans stay queued until one can start
  }
}

void BatchSpanProcessor::OnEnd(SpanPtr span) noexcept {
  if (!span || !Sampled(*span)) return;
  State& s = *state_;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.shutdown || s.queue.size() >= s.options.max_queue_size) {
      s.spans_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!s.worker) StartWorkerLocked();
    try {
      s.queue.push_back(std::move(span));
    } catch (...) {
      s.spans_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    s.spans_queued.fetch_add(1, std::memory_order_relaxed);
    // An idle worker waits for the first span without a timer; it then starts the schedule
    // delay. A worker that is already counting down is woken only by a full batch.
    wake =
        s.queue.size() == s.options.max_export_batch_size || (s.worker_idle && s.queue.size() == 1);
  }
  if (wake) s.cv.notify_one();
}

void BatchSpanProcessor::WorkerLoop(std::shared_ptr<State> state) {
  MarkBackgroundThread();
  State& s = *state;
  std::vector<SpanPtr> taken;
  std::vector<SpanPtr> batch;
  SharedVerdicts verdicts;
  std::unique_lock<std::mutex> lock(s.mu);
  auto nothing_due = [&s] {
    return !s.stop && s.flush_requested == s.flush_completed &&
           s.queue.size() < s.options.max_export_batch_size;
  };
  for (;;) {
    if (nothing_due() && s.queue.empty()) {
      // Nothing to export on a timer: sleep until a span arrives rather than waking every
      // schedule delay (or spinning, with a delay of 0).
      s.worker_idle = true;
      s.cv.wait(lock, [&] { return !nothing_due() || !s.queue.empty(); });
      s.worker_idle = false;
    }
    if (nothing_due()) {
      s.cv.wait_until(lock, Clock::now() + s.options.schedule_delay,
                      [&] { return !nothing_due(); });
    }
    const uint64_t flush_target = s.flush_requested;
    const bool stopping = s.stop;
    taken.swap(s.queue);
    const std::shared_ptr<const Transform> transform = s.transform;  // may be replaced
    const bool needs_reset = s.exporter_needs_fork_reset;
    s.exporter_needs_fork_reset = false;
    lock.unlock();

    if (needs_reset) s.exporter->AfterForkInChild();
    for (size_t i = 0; i < taken.size(); i += s.options.max_export_batch_size) {
      size_t end = std::min(taken.size(), i + s.options.max_export_batch_size);
      batch.clear();
      for (size_t j = i; j < end; ++j) batch.push_back(std::move(taken[j]));
      ExportBatch(s, transform, verdicts, batch);
      SpanPool::Global().Return(batch);  // reused, and freed, by the threads that start spans
    }
    taken.clear();
    batch.clear();

    lock.lock();
    // Spans queued while exporting are drained on the next turn before a flush completes.
    if (flush_target != s.flush_completed && s.queue.empty()) {
      s.flush_completed = flush_target;
      s.flush_cv.notify_all();
    }
    if (stopping && s.queue.empty()) break;
  }
  s.flush_completed = s.flush_requested;
  s.flush_cv.notify_all();
}

void BatchSpanProcessor::ExportBatch(State& s, const std::shared_ptr<const Transform>& transform,
                                     SharedVerdicts& verdicts, std::vector<SpanPtr>& batch) {
  if (batch.empty()) return;
  // A shared block stays apart from the span's own attributes (not copied into each span, nor
  // transformed again with each) when the exporter takes it so and the transform, if any, is
  // known to leave it as it is.
  const bool apart = s.exporter->TakesSharedAttributes();
  auto stays_apart = [&](const std::shared_ptr<const Attributes>& block) {
    if (!apart) return false;
    if (!transform) return true;
    return transform->leaves_unchanged && verdicts.Unchanged(block, transform);
  };
  std::vector<const SpanData*> view;
  view.reserve(batch.size());
  for (size_t i = 0; i < std::min(kObjectsAhead, batch.size()); ++i)
    prefetch::Object<prefetch::Intent::kRead>(*batch[i]);
  for (size_t i = 0; i < batch.size(); ++i) {
    // The spans were written on the application's core: each of their lines misses here, and
    // this loop does too little per span to hide one miss at a time (two thirds of the worker
    // loop's samples stalled on a span's first line). Fetched ahead, the misses overlap.
    if (i + kObjectsAhead < batch.size())
      prefetch::Object<prefetch::Intent::kRead>(*batch[i + kObjectsAhead]);
    if (i + kBuffersAhead < batch.size()) PrefetchBuffers(*batch[i + kBuffersAhead]);
    if (i + kOwnedAhead < batch.size()) PrefetchOwned(*batch[i + kOwnedAhead]);
    SpanData& span = *batch[i];
    if (span.shared_attributes && !stays_apart(span.shared_attributes)) FlattenAttributes(span);
    if (transform) transform->apply(span);
    view.push_back(&span);
  }
  ExportResult result =
      s.exporter->Export(std::span<const SpanData* const>(view.data(), view.size()),
                         Clock::now() + s.options.export_timeout);
  if (result == ExportResult::kSuccess) {
    s.spans_exported.fetch_add(batch.size(), std::memory_order_relaxed);
    s.batches_exported.fetch_add(1, std::memory_order_relaxed);
  } else {
    s.spans_failed.fetch_add(batch.size(), std::memory_order_relaxed);
    s.batches_failed.fetch_add(1, std::memory_order_relaxed);
  }
}

bool BatchSpanProcessor::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  if (!s.worker) {
    if (s.queue.empty() || s.shutdown) return s.queue.empty();
    StartWorkerLocked();
    if (!s.worker) return false;
  }
  const uint64_t target = ++s.flush_requested;
  s.cv.notify_one();
  bool done = s.flush_cv.wait_until(lock, Clock::now() + timeout,
                                    [&] { return s.flush_completed >= target; });
  lock.unlock();
  if (done) s.exporter->ForceFlush(Clock::now() + timeout);
  return done;
}

void BatchSpanProcessor::SetExiting(bool on) noexcept { state_->exporter->SetExiting(on); }

bool BatchSpanProcessor::Shutdown(std::chrono::milliseconds timeout) noexcept {
  State& s = *state_;
  std::unique_ptr<std::thread> worker;
  bool flushed = true;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    if (s.shutdown) return true;
    // What is left is exported once, not retried: a collector that is down would otherwise
    // hold the process up for the whole export timeout.
    s.exporter->SetExiting(true);
    if (!s.worker && !s.queue.empty()) StartWorkerLocked();
    s.shutdown = true;
    if (s.worker) {
      s.stop = true;
      ++s.flush_requested;
      s.cv.notify_one();
      const uint64_t target = s.flush_requested;
      flushed = s.flush_cv.wait_until(lock, Clock::now() + timeout,
                                      [&] { return s.flush_completed >= target; });
    }
    worker = std::move(s.worker);
  }
  // Shutting the exporter down cancels an export still in flight, so the worker ends soon;
  // it holds its own reference to the state, so it may safely outlive this processor.
  s.exporter->Shutdown();
  if (worker) {
    if (flushed) {
      worker->join();
    } else {
      worker->detach();
    }
  }
  return flushed;
}

BatchStats BatchSpanProcessor::Stats() const noexcept {
  const State& s = *state_;
  BatchStats out;
  out.spans_queued = s.spans_queued.load(std::memory_order_relaxed);
  out.spans_dropped = s.spans_dropped.load(std::memory_order_relaxed);
  out.spans_exported = s.spans_exported.load(std::memory_order_relaxed);
  out.spans_failed = s.spans_failed.load(std::memory_order_relaxed);
  out.batches_exported = s.batches_exported.load(std::memory_order_relaxed);
  out.batches_failed = s.batches_failed.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(state_->mu);
  out.queue_length = s.queue.size();
  return out;
}

void BatchSpanProcessor::PrepareFork() noexcept { state_->mu.lock(); }

void BatchSpanProcessor::AfterForkParent() noexcept { state_->mu.unlock(); }

void BatchSpanProcessor::AfterForkChild() noexcept {
  State& s = *state_;
  // The child has only the forking thread. The parent's worker does not exist here: forget it,
  // and forget the parent's queued spans, which the parent exports itself.
  if (s.worker) (void)s.worker.release();
  s.queue.clear();
  s.stop = false;
  s.worker_idle = false;
  s.flush_requested = s.flush_completed = 0;
  s.exporter_needs_fork_reset = true;
  // A condition variable may hold waiter state of the parent's threads: start from scratch.
  new (&s.cv) std::condition_variable();
  new (&s.flush_cv) std::condition_variable();
  s.spans_queued = s.spans_dropped = s.spans_exported = s.spans_failed = 0;
  s.batches_exported = s.batches_failed = 0;
  s.mu.unlock();
}

void MultiSpanProcessor::OnEnd(SpanPtr span) noexcept {
  if (!span || processors_.empty()) return;
  for (size_t i = 0; i + 1 < processors_.size(); ++i) {
    try {
      processors_[i]->OnEnd(std::make_unique<SpanData>(*span));
    } catch (...) {
    }
  }
  processors_.back()->OnEnd(std::move(span));
}

bool MultiSpanProcessor::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  auto deadline = Clock::now() + timeout;
  bool ok = true;
  for (auto& p : processors_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ok = p->ForceFlush(std::max(left, std::chrono::milliseconds(0))) && ok;
  }
  return ok;
}

void MultiSpanProcessor::SetExiting(bool on) noexcept {
  for (auto& p : processors_) p->SetExiting(on);
}

bool MultiSpanProcessor::Shutdown(std::chrono::milliseconds timeout) noexcept {
  auto deadline = Clock::now() + timeout;
  bool ok = true;
  for (auto& p : processors_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ok = p->Shutdown(std::max(left, std::chrono::milliseconds(0))) && ok;
  }
  return ok;
}

}  // namespace djtrace
