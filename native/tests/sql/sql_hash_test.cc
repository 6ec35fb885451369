#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_set>

#include "sql/hash.h"

namespace djtrace::sql {
namespace {

// Fingerprints are exported and compared across processes and hosts, so the function must
// not change by accident: these values pin it.
TEST(HashBytesTest, KnownAnswers) {
  EXPECT_EQ(HashBytes("", 0), 0x35c57662466acb74ull);
  EXPECT_EQ(HashBytes("a", 0), 0x8cb7f30b55c0c217ull);
  EXPECT_EQ(HashBytes("SELECT 1", 0), 0xda67125503b90703ull);
  EXPECT_EQ(HashBytes(std::string(100, 'x'), 42), 0x3f55f6c9f77b0d60ull);
}

TEST(HashBytesTest, IncrementalEqualsOneShotForEverySplit) {
  std::mt19937_64 rng(7);
  for (size_t len : {0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 257}) {
    std::string s(len, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    const uint64_t expect = HashBytes(s, 99);
    for (size_t a = 0; a <= len; ++a) {
      for (size_t b = a; b <= len; b += 1 + len / 9) {
        Hasher h(99);
        h.Update(std::string_view(s).substr(0, a));
        h.Update(std::string_view(s).substr(a, b - a));
        h.Update(std::string_view(s).substr(b));
        ASSERT_EQ(h.Finish(), expect) << len << " " << a << " " << b;
      }
    }
    Hasher bytewise(99);
    for (char c : s) bytewise.Put(static_cast<unsigned char>(c));
    EXPECT_EQ(bytewise.Finish(), expect) << len;
    EXPECT_EQ(bytewise.total_bytes(), len);
  }
}

TEST(HashBytesTest, SnapshotAndRollback) {
  Hasher h(1);
  h.Update("prefix ");
  const Hasher saved = h;
  h.Update("abandoned tail that crosses a block boundary or two, more than 32 bytes");
  h = saved;
  h.Update("kept");
  EXPECT_EQ(h.Finish(), HashBytes("prefix kept", 1));
}

TEST(HashBytesTest, SeedLengthAndContentAllMatter) {
  EXPECT_NE(HashBytes("abc", 0), HashBytes("abc", 1));
  EXPECT_NE(HashBytes("", 0), HashBytes(std::string(1, '\0'), 0));
  EXPECT_NE(HashBytes(std::string(1, '\0'), 0), HashBytes(std::string(2, '\0'), 0));
  EXPECT_NE(HashBytes(std::string(32, '\0'), 0), HashBytes(std::string(33, '\0'), 0));
  EXPECT_NE(HashBytes("ab", 0), HashBytes("ba", 0));
}

TEST(HashBytesTest, NoCollisionsOnStructuredKeys) {
  // Short, similar keys: the shape of SQL texts and parameter tuples.
  std::unordered_set<uint64_t> seen;
  size_t n = 0;
  for (int i = 0; i < 200000; ++i) {
    seen.insert(HashBytes("SELECT * FROM t WHERE id = " + std::to_string(i), 0));
    ++n;
  }
  for (int i = 0; i < 65536; ++i) {
    const char two[2] = {static_cast<char>(i & 0xff), static_cast<char>(i >> 8)};
    seen.insert(HashBytes(std::string_view(two, 2), 0));
    ++n;
  }
  EXPECT_EQ(seen.size(), n);
}

TEST(HashBytesTest, Avalanche) {
  // Flipping one input bit flips about half of the output bits.
  std::mt19937_64 rng(3);
  double total = 0;
  int samples = 0;
  for (size_t len : {4, 8, 16, 40, 100}) {
    for (int trial = 0; trial < 200; ++trial) {
      std::string s(len, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      const uint64_t h = HashBytes(s, 5);
      const size_t bit = rng() % (len * 8);
      s[bit / 8] = static_cast<char>(s[bit / 8] ^ (1 << (bit % 8)));
      total += __builtin_popcountll(h ^ HashBytes(s, 5));
      ++samples;
    }
  }
  const double mean = total / samples;
  EXPECT_GT(mean, 28.0);
  EXPECT_LT(mean, 36.0);
}

TEST(ParameterHashTest, DependsOnStatementAndParameters) {
  const uint64_t fp1 = HashBytes("SELECT ... WHERE id = ?"), fp2 = HashBytes("other");
  EXPECT_EQ(ParameterHash(fp1, "42"), ParameterHash(fp1, "42"));
  EXPECT_NE(ParameterHash(fp1, "42"), ParameterHash(fp1, "43"));
  EXPECT_NE(ParameterHash(fp1, "42"), ParameterHash(fp2, "42"));
  EXPECT_NE(HashCombine(1, 2), HashCombine(2, 1));
}

}  // namespace
}  // namespace djtrace::sql
