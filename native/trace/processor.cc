#include "trace/processor.h"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <set>

namespace djtrace {
namespace {

using Clock = std::chrono::steady_clock;

// Every live batch processor, so that fork handlers can put each into a consistent state.
struct ForkRegistry {
  std::mutex mu;
  std::set<BatchSpanProcessor*> processors;
};

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
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_ || !span) return;
  if (transform_) transform_(*span);
  const SpanData* one[] = {span.get()};
  exporter_->Export(std::span<const SpanData* const>(one, 1), Clock::now() + export_timeout_);
}

bool SimpleSpanProcessor::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return exporter_->ForceFlush(Clock::now() + timeout);
}

bool SimpleSpanProcessor::Shutdown(std::chrono::milliseconds) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return true;
  shutdown_ = true;
  exporter_->Shutdown();
  return true;
}

BatchSpanProcessor::BatchSpanProcessor(std::shared_ptr<SpanExporter> exporter,
                                       BatchOptions options, SpanTransform transform)
    : exporter_(std::move(exporter)), options_(options), transform_(std::move(transform)) {
  // A batch never exceeds the queue, as the official SDK requires of its settings.
  options_.max_export_batch_size = std::clamp<uint32_t>(options_.max_export_batch_size, 1,
                                                        std::max<uint32_t>(options_.max_queue_size, 1));
  queue_.reserve(std::min<uint32_t>(options_.max_queue_size, 4096));
  std::lock_guard<std::mutex> lock(Registry().mu);
  Registry().processors.insert(this);
}

BatchSpanProcessor::~BatchSpanProcessor() {
  Shutdown(options_.export_timeout);
  std::lock_guard<std::mutex> lock(Registry().mu);
  Registry().processors.erase(this);
}

void BatchSpanProcessor::StartWorkerLocked() {
  if (worker_ || shutdown_) return;
  try {
    worker_ = std::make_unique<std::thread>([this] { WorkerLoop(); });
  } catch (...) {
    worker_.reset();  // no thread: spans stay queued until one can start
  }
}

void BatchSpanProcessor::OnEnd(SpanPtr span) noexcept {
  if (!span) return;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ || queue_.size() >= options_.max_queue_size) {
      spans_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!worker_) StartWorkerLocked();
    try {
      queue_.push_back(std::move(span));
    } catch (...) {
      spans_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    spans_queued_.fetch_add(1, std::memory_order_relaxed);
    wake = queue_.size() == options_.max_export_batch_size;
  }
  if (wake) cv_.notify_one();
}

void BatchSpanProcessor::WorkerLoop() {
  std::vector<SpanPtr> taken;
  std::vector<SpanPtr> batch;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!stop_ && flush_requested_ == flush_completed_ &&
        queue_.size() < options_.max_export_batch_size) {
      cv_.wait_until(lock, Clock::now() + options_.schedule_delay, [this] {
        return stop_ || flush_requested_ != flush_completed_ ||
               queue_.size() >= options_.max_export_batch_size;
      });
    }
    const uint64_t flush_target = flush_requested_;
    const bool stopping = stop_;
    taken.swap(queue_);
    const bool needs_reset = exporter_needs_fork_reset_;
    exporter_needs_fork_reset_ = false;
    lock.unlock();

    if (needs_reset) exporter_->AfterForkInChild();
    for (size_t i = 0; i < taken.size(); i += options_.max_export_batch_size) {
      size_t end = std::min(taken.size(), i + options_.max_export_batch_size);
      batch.clear();
      for (size_t j = i; j < end; ++j) batch.push_back(std::move(taken[j]));
      ExportBatch(batch);
    }
    taken.clear();
    batch.clear();

    lock.lock();
    // Spans queued while exporting are drained on the next turn before a flush completes.
    if (flush_target != flush_completed_ && queue_.empty()) {
      flush_completed_ = flush_target;
      flush_cv_.notify_all();
    }
    if (stopping && queue_.empty()) break;
  }
  flush_completed_ = flush_requested_;
  flush_cv_.notify_all();
}

void BatchSpanProcessor::ExportBatch(std::vector<SpanPtr>& batch) {
  if (batch.empty()) return;
  std::vector<const SpanData*> view;
  view.reserve(batch.size());
  for (auto& s : batch) {
    if (transform_) transform_(*s);
    view.push_back(s.get());
  }
  ExportResult result =
      exporter_->Export(std::span<const SpanData* const>(view.data(), view.size()),
                        Clock::now() + options_.export_timeout);
  if (result == ExportResult::kSuccess) {
    spans_exported_.fetch_add(batch.size(), std::memory_order_relaxed);
    batches_exported_.fetch_add(1, std::memory_order_relaxed);
  } else {
    spans_failed_.fetch_add(batch.size(), std::memory_order_relaxed);
    batches_failed_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool BatchSpanProcessor::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  std::unique_lock<std::mutex> lock(mu_);
  if (!worker_) {
    if (queue_.empty() || shutdown_) return queue_.empty();
    StartWorkerLocked();
    if (!worker_) return false;
  }
  const uint64_t target = ++flush_requested_;
  cv_.notify_one();
  bool done = flush_cv_.wait_until(lock, Clock::now() + timeout,
                                   [&] { return flush_completed_ >= target; });
  lock.unlock();
  if (done) exporter_->ForceFlush(Clock::now() + timeout);
  return done;
}

bool BatchSpanProcessor::Shutdown(std::chrono::milliseconds timeout) noexcept {
  std::unique_ptr<std::thread> worker;
  bool flushed = true;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (shutdown_) return true;
    if (!worker_ && !queue_.empty()) StartWorkerLocked();
    shutdown_ = true;
    if (worker_) {
      stop_ = true;
      ++flush_requested_;
      cv_.notify_one();
      const uint64_t target = flush_requested_;
      flushed = flush_cv_.wait_until(lock, Clock::now() + timeout,
                                     [&] { return flush_completed_ >= target; });
    }
    worker = std::move(worker_);
  }
  if (worker) {
    if (flushed) {
      worker->join();
    } else {
      worker->detach();  // a hung exporter must not hang interpreter exit
    }
  }
  if (flushed) exporter_->Shutdown();
  return flushed;
}

BatchStats BatchSpanProcessor::Stats() const noexcept {
  BatchStats s;
  s.spans_queued = spans_queued_.load(std::memory_order_relaxed);
  s.spans_dropped = spans_dropped_.load(std::memory_order_relaxed);
  s.spans_exported = spans_exported_.load(std::memory_order_relaxed);
  s.spans_failed = spans_failed_.load(std::memory_order_relaxed);
  s.batches_exported = batches_exported_.load(std::memory_order_relaxed);
  s.batches_failed = batches_failed_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  s.queue_length = queue_.size();
  return s;
}

void BatchSpanProcessor::PrepareFork() noexcept { mu_.lock(); }

void BatchSpanProcessor::AfterForkParent() noexcept { mu_.unlock(); }

void BatchSpanProcessor::AfterForkChild() noexcept {
  // The child has only the forking thread. The parent's worker does not exist here: forget it,
  // and forget the parent's queued spans, which the parent exports itself.
  if (worker_) (void)worker_.release();
  queue_.clear();
  stop_ = false;
  flush_requested_ = flush_completed_ = 0;
  exporter_needs_fork_reset_ = true;
  // A condition variable may hold waiter state of the parent's threads: start from scratch.
  new (&cv_) std::condition_variable();
  new (&flush_cv_) std::condition_variable();
  spans_queued_ = spans_dropped_ = spans_exported_ = spans_failed_ = 0;
  batches_exported_ = batches_failed_ = 0;
  mu_.unlock();
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
