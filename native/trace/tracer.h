// Starting and ending spans: sampling, ids, limits, and the hand-off to the processors. One
// `TracerCore` per tracer provider; a `LiveSpan` per span the application has open.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace/processor.h"
#include "trace/recording.h"
#include "trace/sampler.h"
#include "trace/span_data.h"

namespace djtrace {

// The propagated part of a span: what a child or another process needs to continue the trace.
struct SpanContextData {
  TraceId trace_id{};
  SpanId span_id{};
  uint8_t trace_flags = 0;  // W3C flags; 0x01 = sampled
  bool remote = false;
  std::string trace_state;
  bool valid() const { return !IsZero(trace_id) && !IsZero(span_id); }
  bool sampled() const { return trace_flags & 0x01; }
};

struct TracerCounters {
  std::atomic<uint64_t> spans_started{0};
  std::atomic<uint64_t> spans_sampled_out{0};
  std::atomic<uint64_t> spans_ended_twice{0};
  // SetAttribute, AddEvent, AddLink, UpdateName or SetStatus on a recording span that ended.
  std::atomic<uint64_t> calls_after_end{0};
};

// Processors are added during set-up; all calls that reach a TracerCore from Python are
// serialised by the GIL, the worker threads never touch it.
class TracerCore {
 public:
  TracerCore(std::shared_ptr<const Sampler> sampler, std::shared_ptr<const Resource> resource,
             SpanLimits limits);

  const std::shared_ptr<const Sampler>& sampler() const { return sampler_; }
  const std::shared_ptr<const Resource>& resource() const { return resource_; }
  // The resource for spans started now: after a fork (from Python or from C), a copy whose
  // process.pid is the child's, made once per fork.
  const std::shared_ptr<const Resource>& CurrentResource();
  const SpanLimits& limits() const { return limits_; }
  TracerCounters& counters() { return counters_; }

  void AddProcessor(std::shared_ptr<SpanProcessor> processor);
  // The processor every ended span goes to (never null).
  SpanProcessor& processor() { return *processor_; }
  bool ForceFlush(std::chrono::milliseconds timeout);
  bool Shutdown(std::chrono::milliseconds timeout);
  // See SpanProcessor::SetExiting.
  void SetExiting(bool on) { processor_->SetExiting(on); }
  bool is_shutdown() const { return shutdown_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<const Sampler> sampler_;
  std::shared_ptr<const Resource> resource_;
  uint64_t resource_fork_generation_ = 0;
  SpanLimits limits_;
  std::shared_ptr<MultiSpanProcessor> processor_;
  std::atomic<bool> shutdown_{false};
  TracerCounters counters_;
};

// State shared by the spans of one local root (a request, a task, a command: a span without a
// parent in this process), such as query statistics. It is handed down from parent to child at
// start, and sees the root span once more when the root ends, before export.
class LocalRootState {
 public:
  virtual ~LocalRootState() = default;
  virtual void OnRootEnd(SpanData& root) noexcept = 0;
  // Which subclass this is (0: none named here), so that the per-query path finds its state
  // without dynamic_cast, which runs in libstdc++'s shared library, away from the hot code.
  virtual int kind() const noexcept { return 0; }
};

// An open span. Not thread-safe: the Python layer calls it under the GIL.
class LiveSpan {
 public:
  LiveSpan() = default;
  LiveSpan(const LiveSpan&) = delete;
  LiveSpan& operator=(const LiveSpan&) = delete;
  // Moved into a span object when one is asked for after the span started (see HookSpan in the
  // bindings); the moved-from span records nothing.
  LiveSpan(LiveSpan&&) = default;
  LiveSpan& operator=(LiveSpan&&) = default;

  const SpanContextData& context() const { return context_; }
  bool is_recording() const { return data_ != nullptr; }
  bool has_ended() const { return ended_; }
  // The span's data while it records (null otherwise); for reading, e.g. by Python processors.
  const SpanData* data() const { return data_.get(); }
  const SpanId& parent_span_id() const { return parent_span_id_; }
  bool is_local_root() const { return local_root_; }
  // The tracer core of a recording span (null for one that records nothing).
  const std::shared_ptr<TracerCore>& core() const { return core_; }
  // The state of this span's local root; set on a local root, inherited by its descendants.
  const std::shared_ptr<LocalRootState>& root_state() const { return root_state_; }
  void set_root_state(std::shared_ptr<LocalRootState> state) { root_state_ = std::move(state); }
  // Gives a span below a local root a state of its own, in place of the one it inherited: it
  // and the spans started under it from now on count there, and it sees its own end as a root
  // does (an eagerly run Celery task, a framework command called inside a traced operation).
  void OwnRootState(std::shared_ptr<LocalRootState> state) {
    root_state_ = std::move(state);
    owns_root_state_ = true;
  }
  // Whether root_state() is this span's own: a local root's, or one given by OwnRootState.
  bool owns_root_state() const { return root_state_ && (local_root_ || owns_root_state_); }

  void SetAttribute(std::string_view key, AttrValue value);
  void AddEvent(std::string name, uint64_t time_unix_nano, Attributes attributes);
  void AddLink(const SpanContextData& context, Attributes attributes);
  void UpdateName(std::string name);
  void SetStatus(StatusCode code, std::string_view description);
  // Ends the span and hands it to the processors; a second call only counts.
  void End(uint64_t end_time_unix_nano = 0) {
    if (MarkEnded(end_time_unix_nano)) Submit();
  }
  // The two halves of End, for callers that inspect the ended span before it is exported
  // (span processors written in Python). MarkEnded returns false if the span had ended.
  bool MarkEnded(uint64_t end_time_unix_nano = 0);
  void Submit();
  // Ends without exporting (e.g. the provider is gone); returns the data for inspection.
  SpanPtr Detach();

 private:
  friend class SpanStarter;
  // True while the span records and has not ended; counts a call on an ended span.
  bool Mutable();
  SpanContextData context_;
  SpanId parent_span_id_{};
  SpanPtr data_;
  std::shared_ptr<TracerCore> core_;
  std::shared_ptr<LocalRootState> root_state_;
  bool local_root_ = true;
  bool owns_root_state_ = false;
  bool ended_ = false;
};

struct StartOptions {
  std::string name;
  // When not empty, the name instead of `name`, copied into the span's own string (which keeps
  // the capacity of the pooled span's previous name: no allocation per span). It must outlive
  // Start; hooks point it at a cached string or at a Python str's UTF-8 buffer.
  std::string_view name_ref;
  SpanKind kind = SpanKind::kInternal;
  const SpanContextData* parent = nullptr;  // null or invalid: a root span
  const LiveSpan* local_parent = nullptr;   // the parent when it is a span of this process
  uint64_t start_time_unix_nano = 0;        // 0: now
  Attributes attributes;
  // Attributes shared with other spans, already within the limits (see SpanData), and how many
  // the limits dropped from them when they were built. They precede `attributes`.
  std::shared_ptr<const Attributes> shared_attributes;
  uint32_t shared_dropped = 0;
  std::vector<std::pair<SpanContextData, Attributes>> links;
  // Set when a sampler written in Python already decided; the native sampler is skipped. Such
  // a sampler saw the trace id of a root span before the span existed, hence `trace_id`.
  std::optional<SamplingDecision> decision;
  std::optional<TraceId> trace_id;
  std::string trace_state_override;  // used with `decision` when the sampler changed it
  bool has_trace_state_override = false;
};

// Attributes that many spans carry unchanged (a hook's, a statement's), built once within the
// span limits and then referenced by each span through StartOptions::shared_attributes;
// rebuilt when the limits change. Not thread-safe: each hook keeps its own under the GIL.
struct LimitedAttributes {
  std::shared_ptr<const Attributes> attributes;
  uint32_t dropped = 0;  // what the limits dropped
  uint32_t max_attributes = 0;
  uint32_t max_length = 0;

  bool Fits(const SpanLimits& limits) const {
    return attributes && max_attributes == limits.max_attributes &&
           max_length == limits.max_span_attribute_length;
  }
  void Build(Attributes attrs, const SpanLimits& limits);
  void ApplyTo(StartOptions& o) const {
    o.shared_attributes = attributes;
    o.shared_dropped = dropped;
  }
};

class SpanStarter {
 public:
  // Fills `span` (which must be fresh): samples, draws ids and, when recording, builds its data.
  static void Start(const std::shared_ptr<TracerCore>& core,
                    const std::shared_ptr<const InstrumentationScope>& scope,
                    StartOptions&& options, LiveSpan& span);
  // The sampling decision Start would take for `options` (from its parent, and for a root span
  // from a trace id drawn now), stored in `options` so that Start takes this one: a caller can
  // then skip building what a span that is not recorded would drop.
  static SamplingDecision Decide(const TracerCore& core, StartOptions& options);
  // Fills `span` (which must be fresh) with a new root context that is valid and not sampled,
  // recording nothing and counted nowhere: the parent an excluded request gives the work done
  // in it, so that a parent-based sampler drops that work instead of making orphan roots.
  static void Unsampled(LiveSpan& span);
};

}  // namespace djtrace
