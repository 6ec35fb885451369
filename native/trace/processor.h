// Span processors: what happens to a span once it ends. The batch processor owns a bounded
// queue and a worker thread that exports without ever touching Python; an application thread
// only pushes a pointer, and a full queue drops and counts instead of blocking.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "export/exporter.h"
#include "trace/span_data.h"

namespace djtrace {

// Applied to every span before it is exported (the redactor, for one).
using SpanTransform = std::function<void(SpanData&)>;
// Whether a transform would leave a block of shared attributes as it is, changing and counting
// nothing. With one, the batch processor asks once per block and, for a block left as it is,
// hands the transform only each span's own attributes: so a transform given one must treat
// each attribute on its own, as the redactor does.
using SharedAttributesCheck = std::function<bool(const Attributes&)>;

class SpanProcessor {
 public:
  virtual ~SpanProcessor() = default;
  virtual void OnEnd(SpanPtr span) noexcept = 0;
  virtual bool ForceFlush(std::chrono::milliseconds timeout) noexcept = 0;
  virtual bool Shutdown(std::chrono::milliseconds timeout) noexcept = 0;
  // Passed on to the exporters (SpanExporter::SetExiting): on for a flush the process makes
  // just before it exits. Shutdown turns it on by itself.
  virtual void SetExiting(bool /*on*/) noexcept {}
};

// Exports each span as it ends, on the ending thread.
class SimpleSpanProcessor final : public SpanProcessor {
 public:
  SimpleSpanProcessor(std::shared_ptr<SpanExporter> exporter, SpanTransform transform = {},
                      std::chrono::milliseconds export_timeout = std::chrono::seconds(30));
  void OnEnd(SpanPtr span) noexcept override;
  bool ForceFlush(std::chrono::milliseconds timeout) noexcept override;
  bool Shutdown(std::chrono::milliseconds timeout) noexcept override;
  void SetExiting(bool on) noexcept override { exporter_->SetExiting(on); }
  // Replaces the transform applied before export (the provider's redactor).
  void SetTransform(SpanTransform transform);

 private:
  std::shared_ptr<SpanExporter> exporter_;
  SpanTransform transform_;
  std::chrono::milliseconds export_timeout_;
  std::mutex mu_;
  bool shutdown_ = false;
};

struct BatchOptions {
  uint32_t max_queue_size = 2048;                       // OTEL_BSP_MAX_QUEUE_SIZE
  std::chrono::milliseconds schedule_delay{5000};       // OTEL_BSP_SCHEDULE_DELAY
  uint32_t max_export_batch_size = 512;                 // OTEL_BSP_MAX_EXPORT_BATCH_SIZE
  std::chrono::milliseconds export_timeout{30000};      // OTEL_BSP_EXPORT_TIMEOUT
};

struct BatchStats {
  uint64_t spans_queued = 0;
  uint64_t spans_dropped = 0;        // queue full, or ended after shutdown
  uint64_t spans_exported = 0;       // handed to a successful export
  uint64_t spans_failed = 0;         // in batches whose export failed
  uint64_t batches_exported = 0;
  uint64_t batches_failed = 0;
  uint64_t queue_length = 0;
};

class BatchSpanProcessor final : public SpanProcessor {
 public:
  BatchSpanProcessor(std::shared_ptr<SpanExporter> exporter, BatchOptions options,
                     SpanTransform transform = {});
  ~BatchSpanProcessor() override;

  void OnEnd(SpanPtr span) noexcept override;
  bool ForceFlush(std::chrono::milliseconds timeout) noexcept override;
  // Exports what is queued within `timeout`. If the exporter is still busy then, it is shut
  // down (which cancels its I/O) and the worker finishes on its own: exit never hangs.
  bool Shutdown(std::chrono::milliseconds timeout) noexcept override;
  void SetExiting(bool on) noexcept override;
  BatchStats Stats() const noexcept;
  const BatchOptions& options() const;
  // Replaces the transform applied before export (the provider's redactor); batches taken
  // after the call use it. `leaves_unchanged`: see SharedAttributesCheck.
  void SetTransform(SpanTransform transform, SharedAttributesCheck leaves_unchanged = {});

  // Fork handling, called by the process-wide pthread_atfork handlers.
  void PrepareFork() noexcept;
  void AfterForkParent() noexcept;
  void AfterForkChild() noexcept;

 private:
  // Everything the worker thread touches, shared with it, so that a worker still busy with a
  // hung exporter after Shutdown never outlives what it uses.
  struct State;
  struct Transform;
  class SharedVerdicts;
  static void WorkerLoop(std::shared_ptr<State> state);
  static void ExportBatch(State& state, const std::shared_ptr<const Transform>& transform,
                          SharedVerdicts& verdicts, std::vector<SpanPtr>& batch);
  void StartWorkerLocked();

  std::shared_ptr<State> state_;
};

// Hands each span to several processors (a copy for all but the last).
class MultiSpanProcessor final : public SpanProcessor {
 public:
  explicit MultiSpanProcessor(std::vector<std::shared_ptr<SpanProcessor>> processors = {})
      : processors_(std::move(processors)) {}
  void Add(std::shared_ptr<SpanProcessor> p) { processors_.push_back(std::move(p)); }
  bool empty() const { return processors_.empty(); }
  void OnEnd(SpanPtr span) noexcept override;
  bool ForceFlush(std::chrono::milliseconds timeout) noexcept override;
  bool Shutdown(std::chrono::milliseconds timeout) noexcept override;
  void SetExiting(bool on) noexcept override;

 private:
  std::vector<std::shared_ptr<SpanProcessor>> processors_;
};

}  // namespace djtrace
