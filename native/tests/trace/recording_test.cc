#include "trace/recording.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace djtrace {
namespace {

constexpr uint32_t kUnlimited = SpanLimits::kUnlimited;

std::vector<std::string> Keys(const Attributes& attrs) {
  std::vector<std::string> keys;
  for (const auto& a : attrs) keys.push_back(a.key);
  return keys;
}

using Strings = std::vector<std::string>;

TEST(SetAttributeTest, AddsInOrder) {
  Attributes attrs;
  uint32_t dropped = 0;
  EXPECT_TRUE(SetAttribute(attrs, dropped, "a", int64_t{1}, 128, kUnlimited));
  EXPECT_TRUE(SetAttribute(attrs, dropped, "b", std::string("x"), 128, kUnlimited));
  EXPECT_TRUE(SetAttribute(attrs, dropped, "c", true, 128, kUnlimited));
  EXPECT_EQ(Keys(attrs), (Strings{"a", "b", "c"}));
  EXPECT_EQ(dropped, 0u);
}

TEST(SetAttributeTest, ReplacingAKeyMovesItToTheEnd) {
  Attributes attrs;
  uint32_t dropped = 0;
  SetAttribute(attrs, dropped, "a", int64_t{1}, 128, kUnlimited);
  SetAttribute(attrs, dropped, "b", int64_t{2}, 128, kUnlimited);
  SetAttribute(attrs, dropped, "c", int64_t{3}, 128, kUnlimited);
  EXPECT_TRUE(SetAttribute(attrs, dropped, "a", std::string("new"), 128, kUnlimited));
  EXPECT_EQ(Keys(attrs), (Strings{"b", "c", "a"}));
  EXPECT_EQ(std::get<std::string>(attrs[2].value), "new");
  EXPECT_EQ(dropped, 0u);
  // Replacing the last key keeps the order.
  SetAttribute(attrs, dropped, "a", int64_t{9}, 128, kUnlimited);
  EXPECT_EQ(Keys(attrs), (Strings{"b", "c", "a"}));
  EXPECT_EQ(std::get<int64_t>(attrs[2].value), 9);
}

TEST(SetAttributeTest, AFullTableEvictsTheOldestAndCounts) {
  Attributes attrs;
  uint32_t dropped = 0;
  for (const char* k : {"a", "b", "c"})
    EXPECT_TRUE(SetAttribute(attrs, dropped, k, int64_t{0}, 3, kUnlimited));
  EXPECT_TRUE(SetAttribute(attrs, dropped, "d", int64_t{4}, 3, kUnlimited));
  EXPECT_EQ(Keys(attrs), (Strings{"b", "c", "d"}));
  EXPECT_EQ(dropped, 1u);
  // An existing key is replaced, not counted, even when the table is full.
  EXPECT_TRUE(SetAttribute(attrs, dropped, "b", int64_t{5}, 3, kUnlimited));
  EXPECT_EQ(Keys(attrs), (Strings{"c", "d", "b"}));
  EXPECT_EQ(dropped, 1u);
  EXPECT_TRUE(SetAttribute(attrs, dropped, "e", int64_t{6}, 3, kUnlimited));
  EXPECT_EQ(Keys(attrs), (Strings{"d", "b", "e"}));
  EXPECT_EQ(dropped, 2u);
}

TEST(SetAttributeTest, ALimitOfZeroDropsEverything) {
  Attributes attrs;
  uint32_t dropped = 0;
  EXPECT_FALSE(SetAttribute(attrs, dropped, "a", int64_t{1}, 0, kUnlimited));
  EXPECT_FALSE(AddAttribute(attrs, dropped, "b", int64_t{1}, 0, kUnlimited));
  EXPECT_TRUE(attrs.empty());
  EXPECT_EQ(dropped, 2u);
}

TEST(SetAttributeTest, AddAttributeFollowsTheSameRules) {
  Attributes attrs;
  uint32_t dropped = 0;
  AddAttribute(attrs, dropped, "a", int64_t{1}, 2, 3);
  AddAttribute(attrs, dropped, "b", std::string("abcdef"), 2, 3);
  AddAttribute(attrs, dropped, "a", int64_t{2}, 2, 3);
  AddAttribute(attrs, dropped, "c", int64_t{3}, 2, 3);
  EXPECT_EQ(Keys(attrs), (Strings{"a", "c"}));
  EXPECT_EQ(dropped, 1u);
}

TEST(SetAttributeTest, AppliesTheValueLengthLimit) {
  Attributes attrs;
  uint32_t dropped = 0;
  SetAttribute(attrs, dropped, "s", std::string("abcdef"), 128, 4);
  SetAttribute(attrs, dropped, "arr", std::vector<std::string>{"abcdef", "xy"}, 128, 4);
  SetAttribute(attrs, dropped, "i", int64_t{123456789}, 128, 4);
  EXPECT_EQ(std::get<std::string>(attrs[0].value), "abcd");
  EXPECT_EQ(std::get<std::vector<std::string>>(attrs[1].value), (Strings{"abcd", "xy"}));
  EXPECT_EQ(std::get<int64_t>(attrs[2].value), 123456789);
}

TEST(TruncateUtf8Test, CountsCodePointsNotBytes) {
  // Python: "héllo wörld"[:3] == "hél"
  std::string s = "h\xC3\xA9llo w\xC3\xB6rld";
  TruncateUtf8(s, 3);
  EXPECT_EQ(s, "h\xC3\xA9l");
  // One character of each UTF-8 length: "aé€😀" (1, 2, 3 and 4 bytes).
  const std::string mixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  const char* expected[] = {"",           "a", "a\xC3\xA9", "a\xC3\xA9\xE2\x82\xAC", mixed.c_str(),
                            mixed.c_str()};
  for (uint32_t limit = 0; limit <= 5; ++limit) {
    std::string t = mixed;
    TruncateUtf8(t, limit);
    EXPECT_EQ(t, expected[limit]) << "limit " << limit;
  }
  std::string emoji = "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80";
  TruncateUtf8(emoji, 2);
  EXPECT_EQ(emoji, "\xF0\x9F\x98\x80\xF0\x9F\x98\x80");
}

TEST(TruncateUtf8Test, ShortStringsAndUnlimitedAreUntouched) {
  std::string s = "h\xC3\xA9llo";  // 5 characters, 6 bytes
  TruncateUtf8(s, 5);
  EXPECT_EQ(s, "h\xC3\xA9llo");
  TruncateUtf8(s, 6);
  EXPECT_EQ(s, "h\xC3\xA9llo");
  TruncateUtf8(s, kUnlimited);
  EXPECT_EQ(s, "h\xC3\xA9llo");
  std::string empty;
  TruncateUtf8(empty, 0);
  EXPECT_EQ(empty, "");
  std::string ascii = "abc";
  TruncateUtf8(ascii, 0);
  EXPECT_EQ(ascii, "");
}

TEST(ApplyLengthLimitTest, TruncatesStringsAndStringArraysOnly) {
  AttrValue s = std::string("\xC3\xA9\xC3\xA9\xC3\xA9");
  ApplyLengthLimit(s, 2);
  EXPECT_EQ(std::get<std::string>(s), "\xC3\xA9\xC3\xA9");

  AttrValue arr = std::vector<std::string>{"abc", "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC", "", "a"};
  ApplyLengthLimit(arr, 2);
  EXPECT_EQ(std::get<std::vector<std::string>>(arr),
            (Strings{"ab", "\xE2\x82\xAC\xE2\x82\xAC", "", "a"}));

  AttrValue ints = std::vector<int64_t>{1, 2, 3, 4};
  ApplyLengthLimit(ints, 1);
  EXPECT_EQ(std::get<std::vector<int64_t>>(ints).size(), 4u);
  AttrValue bools = std::vector<bool>{true, false, true};
  ApplyLengthLimit(bools, 1);
  EXPECT_EQ(std::get<std::vector<bool>>(bools).size(), 3u);
  AttrValue doubles = std::vector<double>{1.5, 2.5};
  ApplyLengthLimit(doubles, 1);
  EXPECT_EQ(std::get<std::vector<double>>(doubles).size(), 2u);
  AttrValue d = 3.25;
  ApplyLengthLimit(d, 0);
  EXPECT_EQ(std::get<double>(d), 3.25);

  AttrValue unlimited = std::string(1000, 'x');
  ApplyLengthLimit(unlimited, kUnlimited);
  EXPECT_EQ(std::get<std::string>(unlimited).size(), 1000u);
}

Event NamedEvent(const std::string& name) {
  Event e;
  e.name = name;
  return e;
}

Link LinkWithSpanByte(uint8_t b) {
  Link l;
  l.trace_id.fill(1);
  l.span_id.fill(b);
  return l;
}

TEST(AddEventTest, DropsTheOldestAtTheLimitAndCounts) {
  SpanData span;
  SpanLimits limits;
  limits.max_events = 2;
  AddEvent(span, NamedEvent("e1"), limits);
  AddEvent(span, NamedEvent("e2"), limits);
  EXPECT_EQ(span.dropped_events_count, 0u);
  AddEvent(span, NamedEvent("e3"), limits);
  AddEvent(span, NamedEvent("e4"), limits);
  ASSERT_EQ(span.events.size(), 2u);
  EXPECT_EQ(span.events[0].name, "e3");
  EXPECT_EQ(span.events[1].name, "e4");
  EXPECT_EQ(span.dropped_events_count, 2u);
}

TEST(AddEventTest, ALimitOfZeroKeepsNothing) {
  SpanData span;
  SpanLimits limits;
  limits.max_events = 0;
  AddEvent(span, NamedEvent("e1"), limits);
  AddEvent(span, NamedEvent("e2"), limits);
  EXPECT_TRUE(span.events.empty());
  EXPECT_EQ(span.dropped_events_count, 2u);
}

TEST(AddLinkTest, DropsTheOldestAtTheLimitAndCounts) {
  SpanData span;
  SpanLimits limits;
  limits.max_links = 3;
  for (uint8_t b = 1; b <= 5; ++b) AddLink(span, LinkWithSpanByte(b), limits);
  ASSERT_EQ(span.links.size(), 3u);
  EXPECT_EQ(span.links[0].span_id[0], 3);
  EXPECT_EQ(span.links[2].span_id[0], 5);
  EXPECT_EQ(span.dropped_links_count, 2u);

  SpanData none;
  limits.max_links = 0;
  AddLink(none, LinkWithSpanByte(1), limits);
  EXPECT_TRUE(none.links.empty());
  EXPECT_EQ(none.dropped_links_count, 1u);
}

TEST(SetStatusTest, ErrorKeepsItsDescription) {
  SpanData span;
  SetStatus(span, StatusCode::kError, "boom");
  EXPECT_EQ(span.status_code, StatusCode::kError);
  EXPECT_EQ(span.status_message, "boom");
  // A later ERROR replaces the description.
  SetStatus(span, StatusCode::kError, "bang");
  EXPECT_EQ(span.status_message, "bang");
}

TEST(SetStatusTest, UnsetIsIgnored) {
  SpanData span;
  SetStatus(span, StatusCode::kError, "boom");
  SetStatus(span, StatusCode::kUnset, "ignored");
  EXPECT_EQ(span.status_code, StatusCode::kError);
  EXPECT_EQ(span.status_message, "boom");
  SpanData fresh;
  SetStatus(fresh, StatusCode::kUnset, "x");
  EXPECT_EQ(fresh.status_code, StatusCode::kUnset);
  EXPECT_EQ(fresh.status_message, "");
}

TEST(SetStatusTest, OkDropsTheDescriptionAndIsFinal) {
  SpanData span;
  SetStatus(span, StatusCode::kError, "boom");
  SetStatus(span, StatusCode::kOk, "fine");
  EXPECT_EQ(span.status_code, StatusCode::kOk);
  EXPECT_EQ(span.status_message, "");  // description only for ERROR
  SetStatus(span, StatusCode::kError, "too late");
  SetStatus(span, StatusCode::kUnset, "");
  EXPECT_EQ(span.status_code, StatusCode::kOk);
  EXPECT_EQ(span.status_message, "");
}

}  // namespace
}  // namespace djtrace
