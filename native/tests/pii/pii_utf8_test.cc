#include <gtest/gtest.h>

#include <string>

#include "pii/utf8.h"

namespace djtrace::pii {
namespace {

std::string Repair(std::string_view in) {
  std::string out;
  AppendRepairedUtf8(in, &out);
  return out;
}

const std::string kFffd(kReplacementCharacter);

TEST(Utf8Test, ValidTextIsUntouched) {
  for (std::string_view s :
       {"", "plain ascii", "caf\xC3\xA9", "\xE2\x82\xAC 12", "\xF0\x9F\x98\x80 emoji",
        "\xEF\xBF\xBD already a replacement", "\xED\x9F\xBF", "\xEE\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(Repair(s), s);
  }
  // Long ASCII runs go through the eight-bytes-at-a-time path.
  const std::string long_ascii(1000, 'x');
  EXPECT_TRUE(IsValidUtf8(long_ascii));
  EXPECT_EQ(ValidUtf8Prefix(long_ascii + "\xFF" + long_ascii), 1000u);
}

TEST(Utf8Test, IllFormedSequencesAreFound) {
  EXPECT_EQ(ValidUtf8Prefix("ab\x80"), 2u);            // lone continuation byte
  EXPECT_EQ(ValidUtf8Prefix("\xC0\x80"), 0u);          // overlong NUL
  EXPECT_EQ(ValidUtf8Prefix("\xC1\xBF"), 0u);          // overlong
  EXPECT_EQ(ValidUtf8Prefix("\xE0\x80\x80"), 0u);      // overlong three-byte
  EXPECT_EQ(ValidUtf8Prefix("\xED\xA0\x80"), 0u);      // surrogate D800
  EXPECT_EQ(ValidUtf8Prefix("\xF0\x80\x80\x80"), 0u);  // overlong four-byte
  EXPECT_EQ(ValidUtf8Prefix("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(ValidUtf8Prefix("\xF5\x80\x80\x80"), 0u);  // invalid lead
  EXPECT_EQ(ValidUtf8Prefix("x\xE2\x82"), 1u);         // truncated at the end
  EXPECT_EQ(ValidUtf8Prefix("\xFF"), 0u);
}

TEST(Utf8Test, MaximalSubpartsBecomeOneReplacementEach) {
  // The example of Unicode 15, section 3.9 (U+FFFD substitution of maximal subparts):
  // 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d
  EXPECT_EQ(Repair("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  // A surrogate is three maximal subparts of one byte (ED is valid only with 80..9F after it).
  EXPECT_EQ(Repair("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(Repair("ok\xE2\x82"), "ok" + kFffd);
  EXPECT_EQ(Repair("\xC3"), kFffd);
  EXPECT_EQ(Repair("\xF0\x9F\x98"), kFffd);
}

TEST(Utf8Test, RepairIsAlwaysValidAndBounded) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (int i = 255; i >= 0; --i) all.push_back(static_cast<char>(i));
  const std::string out = Repair(all);
  EXPECT_TRUE(IsValidUtf8(out));
  EXPECT_LE(out.size(), 3 * all.size());
}

TEST(Utf8Test, DecodeReportsCodePoints) {
  uint32_t cp = 0;
  EXPECT_EQ(DecodeUtf8(reinterpret_cast<const unsigned char*>("\xE2\x82\xAC"), 3, &cp), 3u);
  EXPECT_EQ(cp, 0x20ACu);
  EXPECT_EQ(DecodeUtf8(reinterpret_cast<const unsigned char*>("\xF0\x9F\x98\x80"), 4, &cp), 4u);
  EXPECT_EQ(cp, 0x1F600u);
  EXPECT_EQ(DecodeUtf8(reinterpret_cast<const unsigned char*>("\xE2\x28"), 2, &cp), 0u);
  EXPECT_EQ(cp, 1u);  // the subpart is just the lead byte
  std::string encoded;
  for (uint32_t c : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) AppendUtf8(c, &encoded);
  EXPECT_EQ(encoded, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace djtrace::pii
