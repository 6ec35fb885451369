#include "export/otlp_grouping.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

namespace djtrace {
namespace {

Resource MakeResource(Attributes attributes, std::string schema_url = "") {
  return Resource{std::move(attributes), std::move(schema_url)};
}

InstrumentationScope MakeScope(Attributes attributes, std::string name = "lib") {
  return InstrumentationScope{std::move(name), "1", "", std::move(attributes)};
}

bool SameResource(const Resource& a, const Resource& b) { return SameResourceForGrouping(&a, &b); }
bool SameScope(const InstrumentationScope& a, const InstrumentationScope& b) {
  return SameScopeForGrouping(&a, &b);
}

TEST(OtlpGroupingTest, ResourcesCompareAsMappingsWithTypedValues) {
  Resource base = MakeResource({{"a", int64_t{1}}, {"b", std::string("x")}}, "s");
  EXPECT_TRUE(SameResource(base, MakeResource({{"b", std::string("x")}, {"a", int64_t{1}}}, "s")));
  EXPECT_FALSE(SameResource(base, MakeResource({{"a", int64_t{1}}, {"b", std::string("x")}}, "t")));
  EXPECT_FALSE(SameResource(base, MakeResource({{"a", int64_t{1}}})));
  // The SDK's hash is a JSON dump: 1, 1.0 and true differ, and so do 0.0 and -0.0.
  EXPECT_FALSE(SameResource(MakeResource({{"a", int64_t{1}}}), MakeResource({{"a", true}})));
  EXPECT_FALSE(SameResource(MakeResource({{"a", int64_t{1}}}), MakeResource({{"a", 1.0}})));
  EXPECT_FALSE(SameResource(MakeResource({{"a", 0.0}}), MakeResource({{"a", -0.0}})));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(SameResource(MakeResource({{"a", nan}}), MakeResource({{"a", nan}})));
  EXPECT_TRUE(SameResource(MakeResource({{"a", std::vector<int64_t>{}}}),
                           MakeResource({{"a", std::vector<std::string>{}}})));
  EXPECT_FALSE(SameResource(MakeResource({{"a", std::vector<int64_t>{1}}}),
                            MakeResource({{"a", std::vector<double>{1.0}}})));
  // A null resource is an empty one.
  Resource empty;
  EXPECT_TRUE(SameResourceForGrouping(nullptr, &empty));
  EXPECT_FALSE(SameResourceForGrouping(nullptr, &base));
}

TEST(OtlpGroupingTest, ScopesCompareAsPythonEquality) {
  auto s = [](AttrValue v) { return MakeScope({{"n", std::move(v)}}); };
  EXPECT_TRUE(SameScope(s(int64_t{1}), s(true)));
  EXPECT_TRUE(SameScope(s(int64_t{1}), s(1.0)));
  EXPECT_TRUE(SameScope(s(0.0), s(-0.0)));
  EXPECT_TRUE(SameScope(s(int64_t{0}), s(false)));
  EXPECT_FALSE(SameScope(s(int64_t{2}), s(true)));
  EXPECT_FALSE(SameScope(s(std::numeric_limits<double>::quiet_NaN()),
                         s(std::numeric_limits<double>::quiet_NaN())));
  // Exact int/float comparison: 2^53 + 1 is not the double 2^53.
  EXPECT_FALSE(SameScope(s(int64_t{9007199254740993}), s(9007199254740992.0)));
  EXPECT_TRUE(SameScope(s(int64_t{9007199254740992}), s(9007199254740992.0)));
  EXPECT_FALSE(SameScope(s(int64_t{std::numeric_limits<int64_t>::max()}), s(9.3e18)));
  EXPECT_FALSE(SameScope(s(std::string("1")), s(int64_t{1})));
  EXPECT_TRUE(SameScope(s(std::vector<bool>{true, false}), s(std::vector<int64_t>{1, 0})));
  EXPECT_TRUE(SameScope(s(std::vector<double>{2.0}), s(std::vector<int64_t>{2})));
  EXPECT_FALSE(SameScope(s(std::vector<int64_t>{2}), s(std::vector<int64_t>{2, 2})));
  EXPECT_TRUE(SameScope(s(std::vector<std::string>{}), s(std::vector<double>{})));
  EXPECT_FALSE(SameScope(s(std::vector<std::string>{"1"}), s(std::vector<int64_t>{1})));
  EXPECT_FALSE(SameScope(s(int64_t{1}), s(std::vector<int64_t>{1})));
  EXPECT_FALSE(SameScope(MakeScope({}, "a"), MakeScope({}, "b")));
  InstrumentationScope other_version = MakeScope({});
  other_version.version = "2";
  EXPECT_FALSE(SameScope(MakeScope({}), other_version));
  InstrumentationScope other_schema = MakeScope({});
  other_schema.schema_url = "u";
  EXPECT_FALSE(SameScope(MakeScope({}), other_schema));
  // None is its own key.
  InstrumentationScope empty{};
  EXPECT_FALSE(SameScopeForGrouping(nullptr, &empty));
  EXPECT_TRUE(SameScopeForGrouping(nullptr, nullptr));
}

TEST(OtlpGroupingTest, GroupsInOrderOfFirstAppearance) {
  auto r1 = std::make_shared<Resource>(MakeResource({{"service.name", std::string("a")}}));
  auto r1_copy = std::make_shared<Resource>(*r1);
  auto r2 = std::make_shared<Resource>(MakeResource({{"service.name", std::string("b")}}));
  auto s1 = std::make_shared<InstrumentationScope>(MakeScope({}, "s1"));
  auto s2 = std::make_shared<InstrumentationScope>(MakeScope({}, "s2"));
  std::vector<SpanData> spans(7);
  spans[0].resource = r2, spans[0].scope = s1;
  spans[1].resource = r1, spans[1].scope = s2;
  spans[2].resource = r1_copy, spans[2].scope = s1;
  spans[3].resource = r2, spans[3].scope = nullptr;
  spans[4].resource = r1, spans[4].scope = s2;
  spans[5].resource = r2, spans[5].scope = s1;
  spans[6].resource = r1_copy, spans[6].scope = s2;
  std::vector<const SpanData*> pointers;
  for (const SpanData& s : spans) pointers.push_back(&s);

  SpanGrouping grouping;
  for (int twice = 0; twice < 2; ++twice) {  // buffers reused
    grouping.Build(pointers);
    ASSERT_EQ(grouping.resources().size(), 2u);
    const auto& g2 = grouping.resources()[0];
    const auto& g1 = grouping.resources()[1];
    EXPECT_EQ(g2.resource, r2.get());
    EXPECT_EQ(g1.resource, r1.get());  // the first member's
    auto scopes2 = grouping.scopes(g2);
    ASSERT_EQ(scopes2.size(), 2u);
    EXPECT_EQ(scopes2[0].scope, s1.get());
    EXPECT_EQ(scopes2[1].scope, nullptr);
    auto scopes1 = grouping.scopes(g1);
    ASSERT_EQ(scopes1.size(), 2u);
    EXPECT_EQ(scopes1[0].scope, s2.get());
    EXPECT_EQ(scopes1[1].scope, s1.get());
    auto ids = [&](const SpanGrouping::ScopeGroup& g) {
      std::vector<size_t> v;
      for (const SpanData* s : grouping.spans(g)) v.push_back(s - spans.data());
      return v;
    };
    EXPECT_EQ(ids(scopes2[0]), (std::vector<size_t>{0, 5}));
    EXPECT_EQ(ids(scopes2[1]), (std::vector<size_t>{3}));
    EXPECT_EQ(ids(scopes1[0]), (std::vector<size_t>{1, 4, 6}));
    EXPECT_EQ(ids(scopes1[1]), (std::vector<size_t>{2}));
  }
  grouping.Build({});
  EXPECT_TRUE(grouping.resources().empty());
}

}  // namespace
}  // namespace djtrace
