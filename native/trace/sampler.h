// Head samplers, deciding as opentelemetry-sdk does: the same inputs give the same decision.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace {

enum class SamplingDecision : uint8_t { kDrop = 0, kRecordOnly = 1, kRecordAndSample = 2 };

// What a sampler may know of the parent span.
struct ParentInfo {
  bool valid = false;   // false: a root span
  bool remote = false;  // parent context came from another process
  bool sampled = false;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual SamplingDecision ShouldSample(const ParentInfo& parent,
                                        const TraceId& trace_id) const noexcept = 0;
  // As opentelemetry-sdk's get_description(), e.g. "TraceIdRatioBased{0.5}".
  virtual std::string Description() const = 0;
};

class AlwaysOnSampler final : public Sampler {
 public:
  SamplingDecision ShouldSample(const ParentInfo&, const TraceId&) const noexcept override {
    return SamplingDecision::kRecordAndSample;
  }
  std::string Description() const override { return "AlwaysOnSampler"; }
};

class AlwaysOffSampler final : public Sampler {
 public:
  SamplingDecision ShouldSample(const ParentInfo&, const TraceId&) const noexcept override {
    return SamplingDecision::kDrop;
  }
  std::string Description() const override { return "AlwaysOffSampler"; }
};

// Samples a trace when the low 64 bits of its id are below round(ratio * 2^64), exactly the
// comparison opentelemetry-sdk makes, so both agree on every id.
class TraceIdRatioBasedSampler final : public Sampler {
 public:
  explicit TraceIdRatioBasedSampler(double ratio);
  SamplingDecision ShouldSample(const ParentInfo&, const TraceId& trace_id) const noexcept override;
  std::string Description() const override;
  double ratio() const { return ratio_; }
  // The bound as a 128-bit value: a ratio of 1.0 gives 2^64. Ratios outside [0, 1] (which
  // MakeSampler refuses) are clamped to that range; NaN gives 0.
  unsigned __int128 bound() const { return bound_; }

 private:
  double ratio_;
  unsigned __int128 bound_;
};

// Follows the parent's decision; asks `root` for root spans.
class ParentBasedSampler final : public Sampler {
 public:
  ParentBasedSampler(std::shared_ptr<const Sampler> root,
                     std::shared_ptr<const Sampler> remote_parent_sampled = nullptr,
                     std::shared_ptr<const Sampler> remote_parent_not_sampled = nullptr,
                     std::shared_ptr<const Sampler> local_parent_sampled = nullptr,
                     std::shared_ptr<const Sampler> local_parent_not_sampled = nullptr);
  SamplingDecision ShouldSample(const ParentInfo& parent,
                                const TraceId& trace_id) const noexcept override;
  std::string Description() const override;

 private:
  std::shared_ptr<const Sampler> root_, remote_sampled_, remote_not_sampled_, local_sampled_,
      local_not_sampled_;
};

// Builds a sampler from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG values. Returns null and
// fills `error` with a message naming the bad value when they are not valid.
std::shared_ptr<const Sampler> MakeSampler(std::string_view name, std::string_view arg,
                                           std::string* error);

}  // namespace djtrace
