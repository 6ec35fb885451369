#include "trace/tracer.h"

#include <unistd.h>

#include "trace/clock.h"
#include "trace/ids.h"
#include "trace/span_pool.h"

namespace djtrace {

TracerCore::TracerCore(std::shared_ptr<const Sampler> sampler,
                       std::shared_ptr<const Resource> resource, SpanLimits limits)
    : sampler_(std::move(sampler)),
      resource_(std::move(resource)),
      limits_(limits),
      processor_(std::make_shared<MultiSpanProcessor>()) {
  if (!sampler_)
    sampler_ = std::make_shared<ParentBasedSampler>(std::make_shared<AlwaysOnSampler>());
  if (!resource_) resource_ = std::make_shared<Resource>();
}

const std::shared_ptr<const Resource>& TracerCore::CurrentResource() {
  const uint64_t generation = ForkGeneration();
  if (generation == resource_fork_generation_) return resource_;
  resource_fork_generation_ = generation;
  bool has_pid = false;
  for (const auto& a : resource_->attributes) has_pid = has_pid || a.key == "process.pid";
  if (has_pid) {
    auto copy = std::make_shared<Resource>(*resource_);
    for (auto& a : copy->attributes)
      if (a.key == "process.pid") a.value = static_cast<int64_t>(getpid());
    resource_ = std::move(copy);
  }
  return resource_;
}

void TracerCore::AddProcessor(std::shared_ptr<SpanProcessor> processor) {
  // Processors are added at set-up, before spans flow; the copy keeps readers lock-free.
  auto next = std::make_shared<MultiSpanProcessor>(*processor_);
  next->Add(std::move(processor));
  processor_ = std::move(next);
}

bool TracerCore::ForceFlush(std::chrono::milliseconds timeout) {
  return processor_->ForceFlush(timeout);
}

bool TracerCore::Shutdown(std::chrono::milliseconds timeout) {
  if (shutdown_.exchange(true)) return true;
  return processor_->Shutdown(timeout);
}

namespace {

bool DistinctWithinCount(const Attributes& attrs, uint32_t max_count) {
  if (attrs.size() > max_count) return false;
  for (size_t i = 1; i < attrs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (attrs[i].key == attrs[j].key) return false;
  return true;
}

bool HasKey(const Attributes& attrs, std::string_view key) {
  for (const Attribute& a : attrs)
    if (a.key == key) return true;
  return false;
}

bool SharesKey(const Attributes& shared, const Attributes& own) {
  for (const Attribute& a : own)
    if (HasKey(shared, a.key)) return true;
  return false;
}

ParentInfo InfoOf(const SpanContextData* parent) {
  ParentInfo info;
  if (parent) {
    info.valid = true;
    info.remote = parent->remote;
    info.sampled = parent->sampled();
  }
  return info;
}

}  // namespace

SamplingDecision SpanStarter::Decide(const TracerCore& core, StartOptions& options) {
  if (options.decision) return *options.decision;
  const SpanContextData* parent =
      options.parent && options.parent->valid() ? options.parent : nullptr;
  if (!parent && !options.trace_id) options.trace_id = NewTraceId();
  options.decision =
      core.sampler()->ShouldSample(InfoOf(parent), parent ? parent->trace_id : *options.trace_id);
  return *options.decision;
}

void SpanStarter::Start(const std::shared_ptr<TracerCore>& core,
                        const std::shared_ptr<const InstrumentationScope>& scope,
                        StartOptions&& options, LiveSpan& span) {
  const SpanContextData* parent =
      options.parent && options.parent->valid() ? options.parent : nullptr;
  SpanContextData& ctx = span.context_;
  ctx.trace_id = parent ? parent->trace_id : (options.trace_id ? *options.trace_id : NewTraceId());
  ctx.span_id = NewSpanId();
  ctx.remote = false;
  if (parent) {
    ctx.trace_state = parent->trace_state;
    span.parent_span_id_ = parent->span_id;
  }
  if (parent && options.local_parent) {
    span.local_root_ = false;
    span.root_state_ = options.local_parent->root_state();
  }

  SamplingDecision decision;
  if (options.decision) {
    decision = *options.decision;
    if (options.has_trace_state_override) ctx.trace_state = std::move(options.trace_state_override);
  } else {
    decision = core->sampler()->ShouldSample(InfoOf(parent), ctx.trace_id);
  }
  ctx.trace_flags = decision == SamplingDecision::kRecordAndSample ? 0x01 : 0x00;
  core->counters().spans_started.fetch_add(1, std::memory_order_relaxed);
  if (decision == SamplingDecision::kDrop) {
    core->counters().spans_sampled_out.fetch_add(1, std::memory_order_relaxed);
    return;  // a non-recording span: context only, nothing stored
  }

  SpanPtr data = SpanPool::Global().Take();
  data->trace_id = ctx.trace_id;
  data->span_id = ctx.span_id;
  data->trace_state = ctx.trace_state;
  if (parent) {
    data->parent_span_id = parent->span_id;
    data->flags = ctx.trace_flags | 0x100u | (parent->remote ? 0x200u : 0u);
  } else {
    data->flags = ctx.trace_flags | 0x100u;
  }
  if (!options.name_ref.empty()) {
    data->name.assign(options.name_ref.data(), options.name_ref.size());
  } else {
    data->name = std::move(options.name);
  }
  data->kind = options.kind;
  data->start_time_unix_nano =
      options.start_time_unix_nano ? options.start_time_unix_nano : NowUnixNano();
  const SpanLimits& limits = core->limits();
  if (options.shared_attributes) {
    data->dropped_attributes_count = options.shared_dropped;
    if (options.attributes.empty() ||
        (!SharesKey(*options.shared_attributes, options.attributes) &&
         options.shared_attributes->size() + options.attributes.size() <= limits.max_attributes &&
         DistinctWithinCount(options.attributes, limits.max_attributes))) {
      data->shared_attributes = std::move(options.shared_attributes);
    } else {
      // Keys in common, or past the count limit: the general rules, on a copy.
      data->attributes = *options.shared_attributes;
    }
  }
  if (!options.attributes.empty()) {
    if (data->attributes.empty() &&
        (data->shared_attributes ||  // checked above
         DistinctWithinCount(options.attributes, limits.max_attributes))) {
      // The common case (distinct keys, within the count limit): setting them one by one would
      // keep them all in this order, so the vector is taken over instead of copied key by key.
      data->attributes = std::move(options.attributes);
      for (auto& a : data->attributes) ApplyLengthLimit(a.value, limits.max_span_attribute_length);
    } else {
      data->attributes.reserve(options.attributes.size());
      for (auto& a : options.attributes)
        SetAttribute(data->attributes, data->dropped_attributes_count, a.key, std::move(a.value),
                     limits.max_attributes, limits.max_span_attribute_length);
    }
  }
  for (auto& [link_ctx, link_attrs] : options.links) {
    Link link;
    link.trace_id = link_ctx.trace_id;
    link.span_id = link_ctx.span_id;
    link.trace_state = link_ctx.trace_state;
    link.flags = link_ctx.trace_flags | 0x100u | (link_ctx.remote ? 0x200u : 0u);
    for (auto& a : link_attrs)
      SetAttribute(link.attributes, link.dropped_attributes_count, a.key, std::move(a.value),
                   limits.max_link_attributes, limits.max_attribute_length);
    djtrace::AddLink(*data, std::move(link), limits);
  }
  data->scope = scope;
  data->resource = core->CurrentResource();
  span.data_ = std::move(data);
  span.core_ = core;
}

void LimitedAttributes::Build(Attributes attrs, const SpanLimits& limits) {
  auto limited = std::make_shared<Attributes>();
  limited->reserve(attrs.size());
  uint32_t n_dropped = 0;
  for (Attribute& a : attrs)
    djtrace::SetAttribute(*limited, n_dropped, a.key, std::move(a.value), limits.max_attributes,
                          limits.max_span_attribute_length);
  attributes = std::move(limited);
  dropped = n_dropped;
  max_attributes = limits.max_attributes;
  max_length = limits.max_span_attribute_length;
}

void SpanStarter::Unsampled(LiveSpan& span) {
  span.context_.trace_id = NewTraceId();
  span.context_.span_id = NewSpanId();
  span.context_.trace_flags = 0;
  span.context_.remote = false;
}

bool LiveSpan::Mutable() {
  // An ended span is read-only even while its data is still here (between MarkEnded and
  // Submit, when processors written in Python look at it), as opentelemetry-sdk ignores any
  // change to an ended span.
  if (ended_) {
    if (core_) core_->counters().calls_after_end.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return data_ != nullptr;
}

void LiveSpan::SetAttribute(std::string_view key, AttrValue value) {
  if (!Mutable()) return;
  const SpanLimits& limits = core_->limits();
  if (data_->shared_attributes) {
    // A new key below the count limit goes after the shared ones; anything else (replacing
    // one of them, evicting the oldest) needs them in the span's own list.
    const Attributes& shared = *data_->shared_attributes;
    if (shared.size() + data_->attributes.size() >= limits.max_attributes || HasKey(shared, key)) {
      FlattenAttributes(*data_);
    }
  }
  djtrace::SetAttribute(data_->attributes, data_->dropped_attributes_count, key, std::move(value),
                        limits.max_attributes, limits.max_span_attribute_length);
}

void LiveSpan::AddEvent(std::string name, uint64_t time_unix_nano, Attributes attributes) {
  if (!Mutable()) return;
  const SpanLimits& limits = core_->limits();
  Event event;
  event.name = std::move(name);
  event.time_unix_nano = time_unix_nano ? time_unix_nano : NowUnixNano();
  for (auto& a : attributes)
    djtrace::SetAttribute(event.attributes, event.dropped_attributes_count, a.key,
                          std::move(a.value), limits.max_event_attributes,
                          limits.max_attribute_length);
  djtrace::AddEvent(*data_, std::move(event), limits);
}

void LiveSpan::AddLink(const SpanContextData& context, Attributes attributes) {
  if (!Mutable() || !context.valid()) return;
  const SpanLimits& limits = core_->limits();
  Link link;
  link.trace_id = context.trace_id;
  link.span_id = context.span_id;
  link.trace_state = context.trace_state;
  link.flags = context.trace_flags | 0x100u | (context.remote ? 0x200u : 0u);
  for (auto& a : attributes)
    djtrace::SetAttribute(link.attributes, link.dropped_attributes_count, a.key, std::move(a.value),
                          limits.max_link_attributes, limits.max_attribute_length);
  djtrace::AddLink(*data_, std::move(link), limits);
}

void LiveSpan::UpdateName(std::string name) {
  if (Mutable()) data_->name = std::move(name);
}

void LiveSpan::SetStatus(StatusCode code, std::string_view description) {
  if (Mutable()) djtrace::SetStatus(*data_, code, description);
}

bool LiveSpan::MarkEnded(uint64_t end_time_unix_nano) {
  if (ended_) {
    if (core_) core_->counters().spans_ended_twice.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ended_ = true;
  if (data_) {
    data_->end_time_unix_nano = end_time_unix_nano ? end_time_unix_nano : NowUnixNano();
    if (owns_root_state()) {
      FlattenAttributes(*data_);  // the root's statistics set attributes of their own
      root_state_->OnRootEnd(*data_);
    }
  }
  return true;
}

void LiveSpan::Submit() {
  if (!data_) return;
  if (core_->is_shutdown()) {
    data_.reset();
    return;
  }
  core_->processor().OnEnd(std::move(data_));
}

SpanPtr LiveSpan::Detach() {
  ended_ = true;
  if (data_) FlattenAttributes(*data_);
  return std::move(data_);
}

}  // namespace djtrace
