#include "export/gzip.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace djtrace {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Text(size_t n) {
  std::string s;
  while (s.size() < n) s += "SELECT id, name FROM orders WHERE customer_id = ? LIMIT 21; ";
  s.resize(n);
  return s;
}

TEST(GzipTest, RoundTripsAtEveryLevel) {
  const std::string inputs[] = {"", "a", Text(1000), Text(300000), RandomBytes(70000, 1)};
  for (int level = -1; level <= 9; ++level) {
    for (const std::string& in : inputs) {
      std::string compressed;
      ASSERT_TRUE(GzipCompress(in, compressed, level));
      std::string back;
      ASSERT_TRUE(GzipDecompress(compressed, back));
      EXPECT_EQ(back, in) << "level " << level << " size " << in.size();
    }
  }
}

TEST(GzipTest, WritesGzipFraming) {
  std::string out;
  ASSERT_TRUE(GzipCompress(Text(5000), out));
  ASSERT_GT(out.size(), 18u);
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 0x8b);
  EXPECT_EQ(out[2], 8);          // deflate
  EXPECT_LT(out.size(), 1000u);  // repetitive text compresses
  // The trailer holds the input size modulo 2^32.
  uint32_t isize = static_cast<uint8_t>(out[out.size() - 4]) |
                   static_cast<uint8_t>(out[out.size() - 3]) << 8 |
                   static_cast<uint8_t>(out[out.size() - 2]) << 16 |
                   static_cast<uint32_t>(static_cast<uint8_t>(out[out.size() - 1])) << 24;
  EXPECT_EQ(isize, 5000u);
}

TEST(GzipTest, AppendsAndKeepsStateBetweenCalls) {
  std::string out = "head";
  ASSERT_TRUE(GzipCompress("first", out));
  size_t first_end = out.size();
  ASSERT_TRUE(GzipCompress("second", out, 1));  // another level: the stream is re-made
  ASSERT_TRUE(GzipCompress("third", out, 1));   // same level: reset
  std::string one, two;
  ASSERT_TRUE(GzipCompress("first", one));
  EXPECT_EQ(out.substr(4, first_end - 4), one);  // deterministic: same bytes as a fresh call
  std::string back;
  ASSERT_TRUE(GzipDecompress(std::string_view(out).substr(4, first_end - 4), back));
  EXPECT_EQ(back, "first");
}

TEST(GzipTest, RejectsBadLevels) {
  std::string out = "kept";
  EXPECT_FALSE(GzipCompress("x", out, 10));
  EXPECT_FALSE(GzipCompress("x", out, -2));
  EXPECT_EQ(out, "kept");
}

TEST(GzipTest, DecompressRejectsDamage) {
  std::string compressed;
  ASSERT_TRUE(GzipCompress(Text(10000), compressed));
  std::string out = "kept";
  EXPECT_FALSE(GzipDecompress(compressed.substr(0, compressed.size() - 1), out));  // truncated
  EXPECT_FALSE(GzipDecompress(compressed + "x", out));                             // trailing
  std::string corrupt = compressed;
  corrupt[corrupt.size() - 6] ^= 1;  // CRC
  EXPECT_FALSE(GzipDecompress(corrupt, out));
  EXPECT_FALSE(GzipDecompress("not gzip at all", out));
  EXPECT_FALSE(GzipDecompress("", out));
  EXPECT_EQ(out, "kept");
}

TEST(GzipTest, DecompressHonoursTheOutputLimit) {
  std::string compressed;
  ASSERT_TRUE(GzipCompress(std::string(100000, 'z'), compressed));
  std::string out;
  EXPECT_FALSE(GzipDecompress(compressed, out, 99999));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(GzipDecompress(compressed, out, 100000));
  EXPECT_EQ(out.size(), 100000u);
}

}  // namespace
}  // namespace djtrace
