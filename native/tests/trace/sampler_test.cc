#include "trace/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

namespace djtrace {
namespace {

using u128 = unsigned __int128;

constexpr u128 kTwoTo64 = static_cast<u128>(1) << 64;

// A trace id whose low 64 bits are `low`; the high half is filled so that a sampler reading the
// wrong half would decide differently.
TraceId IdWithLow64(uint64_t low, uint8_t high_fill = 0xA5) {
  TraceId id;
  for (int i = 0; i < 8; ++i) id[i] = high_fill;
  for (int i = 15; i >= 8; --i) {
    id[i] = static_cast<uint8_t>(low);
    low >>= 8;
  }
  return id;
}

std::string U128(u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return s;
}

// Expected bounds are Python's round(ratio * 2**64), as opentelemetry-sdk's
// TraceIdRatioBased.get_bound_for_rate computes them, e.g.
//   python3 -c "print(round(0.3*(2**64)))"
struct BoundCase {
  double ratio;
  const char* bound;
};

TEST(TraceIdRatioBasedTest, BoundIsPythonRoundOfRatioTimesTwoTo64) {
  const BoundCase cases[] = {
      {0.0, "0"},
      {1.0, "18446744073709551616"},
      {0.5, "9223372036854775808"},
      {1e-9, "18446744074"},
      {0.3, "5534023222112865280"},
      {0.1, "1844674407370955264"},
      {0.25, "4611686018427387904"},
      {1e-5, "184467440737096"},
      {1.0 / 3.0, "6148914691236516864"},
      {0.1 + 0.2, "5534023222112866304"},
      {1e-16, "1845"},
      {5e-324, "0"},
  };
  for (const auto& c : cases) {
    TraceIdRatioBasedSampler sampler(c.ratio);
    EXPECT_EQ(U128(sampler.bound()), c.bound) << "ratio " << c.ratio;
    EXPECT_EQ(sampler.ratio(), c.ratio);
  }
}

TEST(TraceIdRatioBasedTest, HalfwayBoundsRoundToEvenAsPythonDoes) {
  // round(2.5) == 2, round(3.5) == 4, round(0.5) == 0, round(1.5) == 2 in Python.
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(2.5, -64)).bound()), "2");
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(3.5, -64)).bound()), "4");
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(0.5, -64)).bound()), "0");
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(1.5, -64)).bound()), "2");
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(2.25, -64)).bound()), "2");
  EXPECT_EQ(U128(TraceIdRatioBasedSampler(std::ldexp(2.75, -64)).bound()), "3");
}

TEST(TraceIdRatioBasedTest, RatiosOutsideTheRangeAreClampedWithoutUndefinedBehaviour) {
  EXPECT_EQ(TraceIdRatioBasedSampler(2.0).bound(), kTwoTo64);
  EXPECT_EQ(TraceIdRatioBasedSampler(1e300).bound(), kTwoTo64);
  EXPECT_EQ(TraceIdRatioBasedSampler(std::numeric_limits<double>::infinity()).bound(), kTwoTo64);
  EXPECT_EQ(TraceIdRatioBasedSampler(-0.5).bound(), 0u);
  EXPECT_EQ(TraceIdRatioBasedSampler(-std::numeric_limits<double>::infinity()).bound(), 0u);
  TraceIdRatioBasedSampler nan(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(nan.bound(), 0u);
  EXPECT_EQ(nan.ShouldSample({}, IdWithLow64(0)), SamplingDecision::kDrop);
}

TEST(TraceIdRatioBasedTest, DecidesOnTheLow64BitsAgainstTheBound) {
  ParentInfo root;
  TraceIdRatioBasedSampler half(0.5);
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(0)), SamplingDecision::kRecordAndSample);
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(0x7FFFFFFFFFFFFFFFull)),
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(0x8000000000000000ull)), SamplingDecision::kDrop);
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(~0ull)), SamplingDecision::kDrop);
  // The high half does not matter.
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(1, 0xFF)), SamplingDecision::kRecordAndSample);
  EXPECT_EQ(half.ShouldSample(root, IdWithLow64(0x8000000000000000ull, 0x00)),
            SamplingDecision::kDrop);

  TraceIdRatioBasedSampler tiny(1e-9);  // bound 18446744074
  EXPECT_EQ(tiny.ShouldSample(root, IdWithLow64(18446744073ull)),
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(tiny.ShouldSample(root, IdWithLow64(18446744074ull)), SamplingDecision::kDrop);

  TraceIdRatioBasedSampler point3(0.3);  // bound 5534023222112865280
  EXPECT_EQ(point3.ShouldSample(root, IdWithLow64(5534023222112865279ull)),
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(point3.ShouldSample(root, IdWithLow64(5534023222112865280ull)),
            SamplingDecision::kDrop);

  TraceIdRatioBasedSampler all(1.0);
  EXPECT_EQ(all.ShouldSample(root, IdWithLow64(~0ull)), SamplingDecision::kRecordAndSample);
  TraceIdRatioBasedSampler none(0.0);
  EXPECT_EQ(none.ShouldSample(root, IdWithLow64(0)), SamplingDecision::kDrop);
}

TEST(TraceIdRatioBasedTest, IgnoresTheParent) {
  TraceIdRatioBasedSampler none(0.0);
  ParentInfo sampled_parent{true, true, true};
  EXPECT_EQ(none.ShouldSample(sampled_parent, IdWithLow64(0)), SamplingDecision::kDrop);
  TraceIdRatioBasedSampler all(1.0);
  ParentInfo dropped_parent{true, false, false};
  EXPECT_EQ(all.ShouldSample(dropped_parent, IdWithLow64(5)), SamplingDecision::kRecordAndSample);
}

TEST(SamplerDescriptionTest, MatchesOpentelemetrySdk) {
  EXPECT_EQ(AlwaysOnSampler().Description(), "AlwaysOnSampler");
  EXPECT_EQ(AlwaysOffSampler().Description(), "AlwaysOffSampler");
  // Python's repr() of the rate.
  EXPECT_EQ(TraceIdRatioBasedSampler(0.5).Description(), "TraceIdRatioBased{0.5}");
  EXPECT_EQ(TraceIdRatioBasedSampler(0.0).Description(), "TraceIdRatioBased{0.0}");
  EXPECT_EQ(TraceIdRatioBasedSampler(1.0).Description(), "TraceIdRatioBased{1.0}");
  EXPECT_EQ(TraceIdRatioBasedSampler(0.3).Description(), "TraceIdRatioBased{0.3}");
  EXPECT_EQ(TraceIdRatioBasedSampler(1e-9).Description(), "TraceIdRatioBased{1e-09}");
  EXPECT_EQ(TraceIdRatioBasedSampler(1e-5).Description(), "TraceIdRatioBased{1e-05}");
  EXPECT_EQ(TraceIdRatioBasedSampler(0.0001).Description(), "TraceIdRatioBased{0.0001}");
  EXPECT_EQ(TraceIdRatioBasedSampler(1e-16).Description(), "TraceIdRatioBased{1e-16}");
  EXPECT_EQ(TraceIdRatioBasedSampler(5e-324).Description(), "TraceIdRatioBased{5e-324}");
  EXPECT_EQ(TraceIdRatioBasedSampler(1.0 / 3.0).Description(),
            "TraceIdRatioBased{0.3333333333333333}");
  EXPECT_EQ(TraceIdRatioBasedSampler(0.1 + 0.2).Description(),
            "TraceIdRatioBased{0.30000000000000004}");

  EXPECT_EQ(ParentBasedSampler(std::make_shared<AlwaysOnSampler>()).Description(),
            "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
            "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
            "localParentNotSampled:AlwaysOffSampler}");
  EXPECT_EQ(ParentBasedSampler(std::make_shared<TraceIdRatioBasedSampler>(0.5)).Description(),
            "ParentBased{root:TraceIdRatioBased{0.5},remoteParentSampled:AlwaysOnSampler,"
            "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
            "localParentNotSampled:AlwaysOffSampler}");
  EXPECT_EQ(ParentBasedSampler(std::make_shared<AlwaysOffSampler>(),
                               std::make_shared<TraceIdRatioBasedSampler>(1e-9))
                .Description(),
            "ParentBased{root:AlwaysOffSampler,remoteParentSampled:TraceIdRatioBased{1e-09},"
            "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
            "localParentNotSampled:AlwaysOffSampler}");
}

// Answers with a fixed decision and remembers what it was asked.
class FixedSampler final : public Sampler {
 public:
  FixedSampler(SamplingDecision decision, std::string name)
      : decision_(decision), name_(std::move(name)) {}
  SamplingDecision ShouldSample(const ParentInfo& parent,
                                const TraceId& trace_id) const noexcept override {
    ++calls;
    last_parent = parent;
    last_trace_id = trace_id;
    return decision_;
  }
  std::string Description() const override { return name_; }

  mutable int calls = 0;
  mutable ParentInfo last_parent;
  mutable TraceId last_trace_id{};

 private:
  SamplingDecision decision_;
  std::string name_;
};

TEST(ParentBasedTest, DefaultDelegatesFollowTheParent) {
  auto root = std::make_shared<FixedSampler>(SamplingDecision::kRecordOnly, "root");
  ParentBasedSampler sampler(root);
  const TraceId id = IdWithLow64(42);
  EXPECT_EQ(sampler.ShouldSample(ParentInfo{false, false, false}, id),
            SamplingDecision::kRecordOnly);
  EXPECT_EQ(root->calls, 1);
  EXPECT_EQ(sampler.ShouldSample(ParentInfo{true, true, true}, id),
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(sampler.ShouldSample(ParentInfo{true, true, false}, id), SamplingDecision::kDrop);
  EXPECT_EQ(sampler.ShouldSample(ParentInfo{true, false, true}, id),
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(sampler.ShouldSample(ParentInfo{true, false, false}, id), SamplingDecision::kDrop);
  EXPECT_EQ(root->calls, 1);  // the root sampler is asked for root spans only
}

TEST(ParentBasedTest, EachParentCaseGoesToItsOwnDelegate) {
  auto root = std::make_shared<FixedSampler>(SamplingDecision::kDrop, "root");
  auto remote_sampled = std::make_shared<FixedSampler>(SamplingDecision::kRecordOnly, "rs");
  auto remote_not = std::make_shared<FixedSampler>(SamplingDecision::kRecordAndSample, "rn");
  auto local_sampled = std::make_shared<FixedSampler>(SamplingDecision::kDrop, "ls");
  auto local_not = std::make_shared<FixedSampler>(SamplingDecision::kRecordOnly, "ln");
  ParentBasedSampler sampler(root, remote_sampled, remote_not, local_sampled, local_not);
  EXPECT_EQ(sampler.Description(),
            "ParentBased{root:root,remoteParentSampled:rs,remoteParentNotSampled:rn,"
            "localParentSampled:ls,localParentNotSampled:ln}");

  const TraceId id = IdWithLow64(7);
  struct Case {
    ParentInfo parent;
    FixedSampler* expected;
    SamplingDecision decision;
  } cases[] = {
      {{false, false, false}, root.get(), SamplingDecision::kDrop},
      {{false, true, true}, root.get(), SamplingDecision::kDrop},  // invalid parent: root
      {{true, true, true}, remote_sampled.get(), SamplingDecision::kRecordOnly},
      {{true, true, false}, remote_not.get(), SamplingDecision::kRecordAndSample},
      {{true, false, true}, local_sampled.get(), SamplingDecision::kDrop},
      {{true, false, false}, local_not.get(), SamplingDecision::kRecordOnly},
  };
  for (const auto& c : cases) {
    const int before = c.expected->calls;
    const int total_before = root->calls + remote_sampled->calls + remote_not->calls +
                             local_sampled->calls + local_not->calls;
    EXPECT_EQ(sampler.ShouldSample(c.parent, id), c.decision) << c.expected->Description();
    EXPECT_EQ(c.expected->calls, before + 1) << c.expected->Description();
    EXPECT_EQ(root->calls + remote_sampled->calls + remote_not->calls + local_sampled->calls +
                  local_not->calls,
              total_before + 1);
    // The delegate sees the same parent and trace id.
    EXPECT_EQ(c.expected->last_parent.remote, c.parent.remote);
    EXPECT_EQ(c.expected->last_parent.sampled, c.parent.sampled);
    EXPECT_EQ(c.expected->last_trace_id, id);
  }
}

TEST(MakeSamplerTest, KnownNames) {
  std::string error;
  struct Case {
    const char* name;
    const char* arg;
    const char* description;
  } cases[] = {
      {"always_on", "", "AlwaysOnSampler"},
      {"always_off", "", "AlwaysOffSampler"},
      {"always_on", "0.5", "AlwaysOnSampler"},  // the argument is ignored
      {"traceidratio", "0.25", "TraceIdRatioBased{0.25}"},
      {"traceidratio", "", "TraceIdRatioBased{1.0}"},  // the specification's default
      {"traceidratio", "0", "TraceIdRatioBased{0.0}"},
      {"traceidratio", "1", "TraceIdRatioBased{1.0}"},
      {"traceidratio", "1e-9", "TraceIdRatioBased{1e-09}"},
      {"traceidratio", ".3", "TraceIdRatioBased{0.3}"},
      {"parentbased_always_on", "",
       "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
       "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
       "localParentNotSampled:AlwaysOffSampler}"},
      {"parentbased_always_off", "",
       "ParentBased{root:AlwaysOffSampler,remoteParentSampled:AlwaysOnSampler,"
       "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
       "localParentNotSampled:AlwaysOffSampler}"},
      {"parentbased_traceidratio", "0.3",
       "ParentBased{root:TraceIdRatioBased{0.3},remoteParentSampled:AlwaysOnSampler,"
       "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
       "localParentNotSampled:AlwaysOffSampler}"},
      {"parentbased_traceidratio", "",
       "ParentBased{root:TraceIdRatioBased{1.0},remoteParentSampled:AlwaysOnSampler,"
       "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
       "localParentNotSampled:AlwaysOffSampler}"},
  };
  for (const auto& c : cases) {
    error = "untouched";
    auto sampler = MakeSampler(c.name, c.arg, &error);
    ASSERT_NE(sampler, nullptr) << c.name << " " << c.arg << ": " << error;
    EXPECT_EQ(sampler->Description(), c.description);
    EXPECT_EQ(error, "untouched");
  }
}

TEST(MakeSamplerTest, BuiltSamplersDecide) {
  std::string error;
  const TraceId low = IdWithLow64(1), high = IdWithLow64(~0ull);
  ParentInfo root;
  auto ratio = MakeSampler("traceidratio", "0.5", &error);
  ASSERT_NE(ratio, nullptr);
  EXPECT_EQ(ratio->ShouldSample(root, low), SamplingDecision::kRecordAndSample);
  EXPECT_EQ(ratio->ShouldSample(root, high), SamplingDecision::kDrop);
  auto parent_ratio = MakeSampler("parentbased_traceidratio", "0.5", &error);
  ASSERT_NE(parent_ratio, nullptr);
  EXPECT_EQ(parent_ratio->ShouldSample(root, high), SamplingDecision::kDrop);
  EXPECT_EQ(parent_ratio->ShouldSample(ParentInfo{true, true, true}, high),
            SamplingDecision::kRecordAndSample);
  auto off = MakeSampler("parentbased_always_off", "", &error);
  ASSERT_NE(off, nullptr);
  EXPECT_EQ(off->ShouldSample(root, low), SamplingDecision::kDrop);
  EXPECT_EQ(off->ShouldSample(ParentInfo{true, false, true}, low),
            SamplingDecision::kRecordAndSample);
}

TEST(MakeSamplerTest, UnknownNameIsRefusedNamingTheSettingAndValue) {
  for (const char* name : {"bogus", "", "AlwaysOn", "always_on ", "traceidratio_parentbased"}) {
    std::string error;
    EXPECT_EQ(MakeSampler(name, "", &error), nullptr) << name;
    EXPECT_NE(error.find("OTEL_TRACES_SAMPLER "), std::string::npos) << error;
    EXPECT_NE(error.find("'" + std::string(name) + "'"), std::string::npos) << error;
    EXPECT_NE(error.find("parentbased_traceidratio"), std::string::npos) << error;
  }
}

TEST(MakeSamplerTest, BadRatioIsRefusedNamingTheSettingAndValue) {
  for (const char* name : {"traceidratio", "parentbased_traceidratio"}) {
    for (const char* arg : {"abc", "1.5", "-0.1", "nan", "inf", "0.5x", "0.5 ", "1e999", "2"}) {
      std::string error;
      EXPECT_EQ(MakeSampler(name, arg, &error), nullptr) << name << " " << arg;
      EXPECT_NE(error.find("OTEL_TRACES_SAMPLER_ARG"), std::string::npos) << error;
      EXPECT_NE(error.find("'" + std::string(arg) + "'"), std::string::npos) << error;
    }
  }
}

TEST(MakeSamplerTest, NullErrorPointerIsAllowed) {
  EXPECT_EQ(MakeSampler("bogus", "", nullptr), nullptr);
  EXPECT_EQ(MakeSampler("traceidratio", "x", nullptr), nullptr);
  EXPECT_NE(MakeSampler("traceidratio", "0.1", nullptr), nullptr);
}

TEST(MakeSamplerTest, AlwaysSamplersAreShared) {
  // Built once per process: asking again costs no allocation.
  EXPECT_EQ(MakeSampler("always_on", "", nullptr), MakeSampler("always_on", "", nullptr));
  EXPECT_EQ(MakeSampler("always_off", "", nullptr), MakeSampler("always_off", "", nullptr));
}

}  // namespace
}  // namespace djtrace
