#include "export/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace djtrace {
namespace {

const std::string kR = "\xEF\xBF\xBD";

std::string Repair(std::string_view s) {
  std::string out;
  AppendSanitizedUtf8(s, out);
  EXPECT_EQ(out.size(), SanitizedUtf8Length(s));
  return out;
}

TEST(Utf8Test, WellFormedTextIsKept) {
  for (std::string_view s :
       {"", "ascii only, longer than eight bytes", "é", "日本語", "🚀",
        "\xF4\x8F\xBF\xBF" /* U+10FFFF */, "\xEE\x80\x80" /* U+E000 */, "mixed é 日 🚀 text"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(Repair(s), s);
  }
}

// Expected results are Python's bytes.decode("utf-8", "replace"): one U+FFFD per maximal
// ill-formed subpart.
TEST(Utf8Test, MaximalSubpartsBecomeOneReplacementEach) {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"\xE0\xA0" + std::string("A"), kR + "A"},  // truncated 3-byte sequence
      {"\xF0\x80", kR + kR},                      // F0 needs 90..BF next: two subparts
      {"\xED\xA0\x80", kR + kR + kR},             // a surrogate
      {"\xC0\xAF", kR + kR},                      // overlong
      {"\xF4\x90\x80\x80", kR + kR + kR + kR},    // above U+10FFFF
      {"\xE2\x82", kR},                           // truncated at the end
      {"\xF0\x9F\x9A", kR},
      {"\xFF", kR},
      {"a\x80" + std::string("b"), "a" + kR + "b"},
      {"\xE2\x82\xAC\xE2", "\xE2\x82\xAC" + kR},
      {"12345678\xFF" + std::string("12345678"), "12345678" + kR + "12345678"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(IsValidUtf8(c.in));
    EXPECT_EQ(Repair(c.in), c.out);
  }
}

TEST(Utf8Test, StepReportsLengths) {
  auto step = [](std::string_view s) {
    return Utf8Step(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(step("a"), 1);
  EXPECT_EQ(step("é"), 2);
  EXPECT_EQ(step("日"), 3);
  EXPECT_EQ(step("🚀"), 4);
  EXPECT_EQ(step("\xF0\x9F\x9A"), -3);
  EXPECT_EQ(step("\xF0\x9F"), -2);
  EXPECT_EQ(step("\x80"), -1);
}

TEST(Utf8Test, RepairOfEveryTwoByteInputIsValid) {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      std::string repaired = Repair(s);
      ASSERT_TRUE(IsValidUtf8(repaired));
      if (IsValidUtf8(s)) ASSERT_EQ(repaired, s);
    }
  }
}

}  // namespace
}  // namespace djtrace
