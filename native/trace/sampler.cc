#include "trace/sampler.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "trace/ids.h"

namespace djtrace {
namespace {

// Python's repr() of a float, which the official sampler description uses.
std::string PyFloatRepr(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s(buf);
  // repr() writes 1.0, not 1, and 1e-05 rather than 1e-5.
  auto e = s.find('e');
  if (e != std::string::npos) {
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    char sign = '+';
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      sign = exp[0];
      exp = exp.substr(1);
    }
    while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
    if (exp.size() < 2) exp = "0" + exp;
    return mant + "e" + sign + exp;
  }
  if (s.find('.') == std::string::npos && s.find("inf") == std::string::npos &&
      s.find("nan") == std::string::npos)
    s += ".0";
  return s;
}

const std::shared_ptr<const Sampler>& AlwaysOn() {
  static const std::shared_ptr<const Sampler> s = std::make_shared<AlwaysOnSampler>();
  return s;
}
const std::shared_ptr<const Sampler>& AlwaysOff() {
  static const std::shared_ptr<const Sampler> s = std::make_shared<AlwaysOffSampler>();
  return s;
}

}  // namespace

TraceIdRatioBasedSampler::TraceIdRatioBasedSampler(double ratio) : ratio_(ratio) {
  // round(ratio * 2**64) with round-half-even, as Python's round() on a float does. The product
  // is exact (a power-of-two scale), so only the fractional part below 2^-64 is rounded.
  long double scaled = std::ldexp(static_cast<long double>(ratio), 64);
  long double integral = std::nearbyint(scaled);  // default mode: to nearest, ties to even
  // The official sampler refuses ratios outside [0, 1]; this constructor cannot refuse, so it
  // clamps: converting NaN, infinity or a huge value to an integer is undefined behaviour, and
  // any bound past 2^64 decides as 2^64 does. NaN samples nothing.
  if (!(integral > 0)) {
    bound_ = 0;
  } else if (integral >= std::ldexp(1.0L, 64)) {
    bound_ = static_cast<unsigned __int128>(1) << 64;  // every id is below it
  } else {
    bound_ = static_cast<uint64_t>(integral);
  }
}

SamplingDecision TraceIdRatioBasedSampler::ShouldSample(const ParentInfo&,
                                                        const TraceId& trace_id) const noexcept {
  return static_cast<unsigned __int128>(TraceIdLow64(trace_id)) < bound_
             ? SamplingDecision::kRecordAndSample
             : SamplingDecision::kDrop;
}

std::string TraceIdRatioBasedSampler::Description() const {
  return "TraceIdRatioBased{" + PyFloatRepr(ratio_) + "}";
}

ParentBasedSampler::ParentBasedSampler(std::shared_ptr<const Sampler> root,
                                       std::shared_ptr<const Sampler> remote_parent_sampled,
                                       std::shared_ptr<const Sampler> remote_parent_not_sampled,
                                       std::shared_ptr<const Sampler> local_parent_sampled,
                                       std::shared_ptr<const Sampler> local_parent_not_sampled)
    : root_(root ? std::move(root) : AlwaysOn()),
      remote_sampled_(remote_parent_sampled ? std::move(remote_parent_sampled) : AlwaysOn()),
      remote_not_sampled_(remote_parent_not_sampled ? std::move(remote_parent_not_sampled)
                                                    : AlwaysOff()),
      local_sampled_(local_parent_sampled ? std::move(local_parent_sampled) : AlwaysOn()),
      local_not_sampled_(local_parent_not_sampled ? std::move(local_parent_not_sampled)
                                                  : AlwaysOff()) {}

SamplingDecision ParentBasedSampler::ShouldSample(const ParentInfo& parent,
                                                  const TraceId& trace_id) const noexcept {
  const Sampler* delegate;
  if (!parent.valid) {
    delegate = root_.get();
  } else if (parent.remote) {
    delegate = parent.sampled ? remote_sampled_.get() : remote_not_sampled_.get();
  } else {
    delegate = parent.sampled ? local_sampled_.get() : local_not_sampled_.get();
  }
  return delegate->ShouldSample(parent, trace_id);
}

std::string ParentBasedSampler::Description() const {
  return "ParentBased{root:" + root_->Description() +
         ",remoteParentSampled:" + remote_sampled_->Description() +
         ",remoteParentNotSampled:" + remote_not_sampled_->Description() +
         ",localParentSampled:" + local_sampled_->Description() +
         ",localParentNotSampled:" + local_not_sampled_->Description() + "}";
}

std::shared_ptr<const Sampler> MakeSampler(std::string_view name, std::string_view arg,
                                           std::string* error) {
  auto ratio_from_arg = [&](double* out) -> bool {
    if (arg.empty()) {
      *out = 1.0;  // the specification's default ratio
      return true;
    }
    std::string text(arg);
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || errno == ERANGE || !(v >= 0.0 && v <= 1.0)) {
      if (error)
        *error = "OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got '" + text + "'";
      return false;
    }
    *out = v;
    return true;
  };
  double ratio = 1.0;
  if (name == "always_on") return AlwaysOn();
  if (name == "always_off") return AlwaysOff();
  if (name == "traceidratio") {
    if (!ratio_from_arg(&ratio)) return nullptr;
    return std::make_shared<TraceIdRatioBasedSampler>(ratio);
  }
  if (name == "parentbased_always_on") return std::make_shared<ParentBasedSampler>(AlwaysOn());
  if (name == "parentbased_always_off") return std::make_shared<ParentBasedSampler>(AlwaysOff());
  if (name == "parentbased_traceidratio") {
    if (!ratio_from_arg(&ratio)) return nullptr;
    return std::make_shared<ParentBasedSampler>(
        std::make_shared<TraceIdRatioBasedSampler>(ratio));
  }
  if (error)
    *error = "OTEL_TRACES_SAMPLER must be one of always_on, always_off, traceidratio, "
             "parentbased_always_on, parentbased_always_off, parentbased_traceidratio; got '" +
             std::string(name) + "'";
  return nullptr;
}

}  // namespace djtrace
