#include "export/json_writer.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

namespace djtrace {
namespace {

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(s, out);
  return out;
}

std::string Double(double d) {
  std::string out;
  AppendJsonDouble(d, out);
  return out;
}

TEST(JsonWriterTest, EscapesWhatJsonRequires) {
  EXPECT_EQ(Quoted(""), R"("")");
  EXPECT_EQ(Quoted("plain text that is long enough for the fast path"),
            R"("plain text that is long enough for the fast path")");
  EXPECT_EQ(Quoted("\"\\/"), R"("\"\\/")");
  EXPECT_EQ(Quoted("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(Quoted(std::string("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Quoted("\x7f"), "\"\x7f\"");
  EXPECT_EQ(Quoted("é日🚀\u2028"), "\"é日🚀\u2028\"");
}

TEST(JsonWriterTest, EscapesInsideLongRuns) {
  // Each special byte at every position of an 8-byte word.
  for (char special : {'"', '\\', '\n', '\x1f', '\x80'}) {
    for (int pos = 0; pos < 16; ++pos) {
      std::string s(16, 'a');
      s[pos] = special;
      std::string q = Quoted(s);
      std::string expected = std::string(pos, 'a');
      if (special == '"') expected += "\\\"";
      if (special == '\\') expected += "\\\\";
      if (special == '\n') expected += "\\n";
      if (special == '\x1f') expected += "\\u001f";
      if (special == '\x80') expected += "\xEF\xBF\xBD";
      expected += std::string(15 - pos, 'a');
      EXPECT_EQ(q, "\"" + expected + "\"") << int(special) << " at " << pos;
    }
  }
}

TEST(JsonWriterTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(Quoted("a\xff" + std::string("b\xe2\x82")),
            "\"a\xEF\xBF\xBD" + std::string("b\xEF\xBF\xBD\""));
}

TEST(JsonWriterTest, DoublesAreShortestAndRoundTrip) {
  EXPECT_EQ(Double(0.0), "0");
  EXPECT_EQ(Double(-0.0), "-0");
  EXPECT_EQ(Double(1.5), "1.5");
  EXPECT_EQ(Double(0.1), "0.1");
  EXPECT_EQ(Double(1e300), "1e+300");
  EXPECT_EQ(Double(5e-324), "5e-324");
  EXPECT_EQ(Double(std::numeric_limits<double>::quiet_NaN()), R"("NaN")");
  EXPECT_EQ(Double(std::numeric_limits<double>::infinity()), R"("Infinity")");
  EXPECT_EQ(Double(-std::numeric_limits<double>::infinity()), R"("-Infinity")");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    double d = std::bit_cast<double>(rng());
    if (!std::isfinite(d)) continue;
    std::string text = Double(d);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), d) << text;
  }
}

TEST(JsonWriterTest, HexIsLowercase) {
  const uint8_t bytes[] = {0x00, 0xAB, 0x0F, 0xF0};
  std::string out;
  AppendHex(bytes, 4, out);
  EXPECT_EQ(out, "00ab0ff0");
}

}  // namespace
}  // namespace djtrace
