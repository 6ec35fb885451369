// SHA-256 against the FIPS 180-2 examples and HMAC-SHA256 against RFC 4231 section 4.
#include <gtest/gtest.h>

#include <string>

#include "pii/hmac.h"
#include "pii/sha256.h"

namespace djtrace::pii {
namespace {

std::string Hex(const Sha256Digest& d, size_t chars = 64) {
  std::string out;
  AppendHex(d, chars, &out);
  return out;
}

TEST(Sha256Test, FipsExamples) {
  EXPECT_EQ(Hex(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256Of("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256Of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmno"
                         "pjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, MillionAsInUnevenChunks) {
  Sha256 h;
  const std::string chunk(997, 'a');  // prime-sized: crosses block boundaries at every offset
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = left < chunk.size() ? left : chunk.size();
    h.Update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(Hex(h.Final()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, PaddingBoundaries) {
  // Lengths around the 55/56/64-byte padding edges must agree between one-shot and bytewise.
  for (size_t len : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u}) {
    const std::string msg(len, 'x');
    Sha256 bytewise;
    for (char c : msg) bytewise.Update(&c, 1);
    EXPECT_EQ(Hex(bytewise.Final()), Hex(Sha256Of(msg))) << len;
  }
}

struct Rfc4231Case {
  std::string key;
  std::string data;
  const char* hex;
  size_t hex_chars;
};

TEST(HmacSha256Test, Rfc4231Vectors) {
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(static_cast<char>(i));
  const Rfc4231Case cases[] = {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 64},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 64},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 64},
      {key4, std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 64},
      // Test case 5 specifies the output truncated to 128 bits.
      {std::string(20, '\x0c'), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b", 32},
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 64},
      {std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 64},
  };
  int n = 1;
  for (const auto& c : cases) {
    EXPECT_EQ(Hex(HmacSha256Of(c.key, c.data), c.hex_chars), c.hex) << "test case " << n;
    // A prepared key gives the same result, every time.
    const HmacSha256 prepared(c.key);
    EXPECT_EQ(Hex(prepared.Sign(c.data), c.hex_chars), c.hex) << "test case " << n;
    EXPECT_EQ(Hex(prepared.Sign(c.data), c.hex_chars), c.hex) << "test case " << n;
    ++n;
  }
}

TEST(HmacSha256Test, KeyOfExactlyOneBlockIsNotHashed) {
  const std::string key(64, 'k');
  // Reference computed with Python's hmac module.
  EXPECT_EQ(Hex(HmacSha256Of("test-key", "alice@example.com"), 16), "f4ec100211f13d19");
  EXPECT_NE(Hex(HmacSha256Of(key, "m")), Hex(HmacSha256Of(std::string(65, 'k'), "m")));
}

TEST(HmacSha256Test, AppendHexClampsLength) {
  std::string out;
  AppendHex(Sha256Of("abc"), 100, &out);
  EXPECT_EQ(out.size(), 64u);
  out.clear();
  AppendHex(Sha256Of("abc"), 5, &out);
  EXPECT_EQ(out, "ba781");
}

}  // namespace
}  // namespace djtrace::pii
