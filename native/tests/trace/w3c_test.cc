#include "trace/w3c.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <string>

namespace djtrace {
namespace {

// The example of the W3C Trace Context specification.
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSpanId[] = "00f067aa0ba902b7";

std::string Header(const std::string& version, const std::string& trace_id,
                   const std::string& span_id, const std::string& flags,
                   const std::string& rest = "") {
  return version + "-" + trace_id + "-" + span_id + "-" + flags + rest;
}

std::string Hex(const TraceId& id) { return ToHex(id.data(), id.size()); }
std::string Hex(const SpanId& id) { return ToHex(id.data(), id.size()); }

bool Parses(const std::string& header) {
  Traceparent tp;
  return ParseTraceparent(header, tp);
}

TEST(TraceparentTest, ParsesTheSpecificationExamples) {
  Traceparent tp;
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tp));
  EXPECT_EQ(Hex(tp.trace_id), kTraceId);
  EXPECT_EQ(Hex(tp.span_id), kSpanId);
  EXPECT_EQ(tp.flags, 0x01);
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", tp));
  EXPECT_EQ(tp.flags, 0x00);
  // Unknown flags are kept as sent.
  ASSERT_TRUE(ParseTraceparent(Header("00", kTraceId, kSpanId, "ff"), tp));
  EXPECT_EQ(tp.flags, 0xFF);
}

TEST(TraceparentTest, SurroundingSpacesAndTabsAreIgnored) {
  Traceparent tp;
  ASSERT_TRUE(ParseTraceparent(" \t" + Header("00", kTraceId, kSpanId, "01") + " \t", tp));
  EXPECT_EQ(Hex(tp.trace_id), kTraceId);
  EXPECT_FALSE(Parses(Header("00", kTraceId, kSpanId, "01") + " x"));
}

TEST(TraceparentTest, UpperCaseHexIsInvalid) {
  std::string upper_trace = kTraceId, upper_span = kSpanId;
  for (char& c : upper_trace) c = static_cast<char>(toupper(c));
  for (char& c : upper_span) c = static_cast<char>(toupper(c));
  EXPECT_FALSE(Parses(Header("00", upper_trace, kSpanId, "01")));
  EXPECT_FALSE(Parses(Header("00", kTraceId, upper_span, "01")));
  EXPECT_FALSE(Parses(Header("00", kTraceId, kSpanId, "0A")));
  EXPECT_FALSE(Parses(Header("0A", kTraceId, kSpanId, "01")));
  // One upper-case digit is enough.
  std::string one = kTraceId;
  one[5] = 'F';
  EXPECT_FALSE(Parses(Header("00", one, kSpanId, "01")));
}

TEST(TraceparentTest, VersionFfIsInvalid) {
  EXPECT_FALSE(Parses(Header("ff", kTraceId, kSpanId, "01")));
  EXPECT_FALSE(Parses(Header("ff", kTraceId, kSpanId, "01", "-extra")));
  EXPECT_TRUE(Parses(Header("fe", kTraceId, kSpanId, "01")));
}

TEST(TraceparentTest, AllZeroIdsAreInvalid) {
  EXPECT_FALSE(Parses(Header("00", std::string(32, '0'), kSpanId, "01")));
  EXPECT_FALSE(Parses(Header("00", kTraceId, std::string(16, '0'), "01")));
  EXPECT_FALSE(Parses(Header("cc", std::string(32, '0'), kSpanId, "01", "-x")));
  // A single non-zero digit is enough.
  EXPECT_TRUE(Parses(Header("00", std::string(31, '0') + "1", std::string(15, '0') + "1", "01")));
}

TEST(TraceparentTest, FutureVersionsMayAppendFields) {
  Traceparent tp;
  ASSERT_TRUE(
      ParseTraceparent(Header("cc", kTraceId, kSpanId, "01", "-what-the-future-will-be-like"), tp));
  EXPECT_EQ(Hex(tp.trace_id), kTraceId);
  EXPECT_EQ(Hex(tp.span_id), kSpanId);
  EXPECT_EQ(tp.flags, 0x01);
  EXPECT_TRUE(Parses(Header("cc", kTraceId, kSpanId, "01")));       // exactly 55
  EXPECT_TRUE(Parses(Header("01", kTraceId, kSpanId, "00", "-")));  // flags followed by a dash
  // After the flags comes a dash or nothing.
  EXPECT_FALSE(Parses(Header("cc", kTraceId, kSpanId, "01", "x")));
  EXPECT_FALSE(Parses(Header("cc", kTraceId, kSpanId, "01", "0-x")));
}

TEST(TraceparentTest, Version00WithExtraDataIsRejected) {
  EXPECT_FALSE(Parses(Header("00", kTraceId, kSpanId, "01", "-extra")));
  EXPECT_FALSE(Parses(Header("00", kTraceId, kSpanId, "01", "-")));
  EXPECT_FALSE(Parses(Header("00", kTraceId, kSpanId, "01", "0")));
}

TEST(TraceparentTest, WrongLengthsAreInvalid) {
  const std::string t = kTraceId, s = kSpanId;
  EXPECT_FALSE(Parses(Header("00", t.substr(1), s, "01")));
  EXPECT_FALSE(Parses(Header("00", t + "0", s, "01")));
  EXPECT_FALSE(Parses(Header("00", t, s.substr(1), "01")));
  EXPECT_FALSE(Parses(Header("00", t, s + "0", "01")));
  EXPECT_FALSE(Parses(Header("00", t, s, "1")));
  EXPECT_FALSE(Parses(Header("00", t, s, "001")));
  EXPECT_FALSE(Parses(Header("0", t, s, "01")));
  EXPECT_FALSE(Parses(Header("000", t, s, "01")));
  EXPECT_FALSE(Parses(""));
  EXPECT_FALSE(Parses("00"));
  EXPECT_FALSE(Parses("00-"));
  EXPECT_FALSE(Parses(Header("00", t, s, "01").substr(0, 54)));
  EXPECT_FALSE(Parses(std::string(55, '-')));
}

TEST(TraceparentTest, WrongDelimitersAndCharactersAreInvalid) {
  const std::string good = Header("00", kTraceId, kSpanId, "01");
  for (size_t dash : {2u, 35u, 52u}) {
    std::string bad = good;
    bad[dash] = '_';
    EXPECT_FALSE(Parses(bad)) << bad;
  }
  for (size_t pos = 0; pos < good.size(); ++pos) {
    if (good[pos] == '-') continue;
    for (char c : {'g', 'z', '.', ' ', 'G', '\0', '\xff'}) {
      std::string bad = good;
      bad[pos] = c;
      EXPECT_FALSE(Parses(bad)) << "position " << pos << " char " << static_cast<int>(c);
    }
  }
}

TEST(TraceparentTest, HeadersLongerThanOpentelemetryAcceptsAreIgnored) {
  const std::string base = Header("cc", kTraceId, kSpanId, "01", "-");
  const std::string at_limit = base + std::string(kMaxTraceparentLength - base.size(), 'x');
  ASSERT_EQ(at_limit.size(), 512u);
  EXPECT_TRUE(Parses(at_limit));
  EXPECT_FALSE(Parses(at_limit + "x"));
}

TEST(TraceparentTest, AFailedParseLeavesTheOutputAlone) {
  Traceparent tp;
  tp.flags = 0x42;
  tp.trace_id.fill(0xAB);
  EXPECT_FALSE(ParseTraceparent(Header("00", kTraceId, std::string(16, '0'), "01"), tp));
  EXPECT_EQ(tp.flags, 0x42);
  EXPECT_EQ(tp.trace_id[0], 0xAB);
  EXPECT_TRUE(IsZero(tp.span_id));
}

TEST(TraceparentTest, FormatRoundTrips) {
  Traceparent tp;
  ASSERT_TRUE(ParseTraceparent(Header("00", kTraceId, kSpanId, "01"), tp));
  EXPECT_EQ(FormatTraceparent(tp.trace_id, tp.span_id, tp.flags),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  // A future version is written back as version 00, without the extra fields.
  ASSERT_TRUE(ParseTraceparent(Header("cc", kTraceId, kSpanId, "03", "-future"), tp));
  const std::string formatted = FormatTraceparent(tp.trace_id, tp.span_id, tp.flags);
  EXPECT_EQ(formatted, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  Traceparent again;
  ASSERT_TRUE(ParseTraceparent(formatted, again));
  EXPECT_EQ(again.trace_id, tp.trace_id);
  EXPECT_EQ(again.span_id, tp.span_id);
  EXPECT_EQ(again.flags, tp.flags);
}

TEST(HexTest, ToHexAndFromHex) {
  const uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(ToHex(bytes, 4), "000fa0ff");
  EXPECT_EQ(ToHex(bytes, 0), "");
  uint8_t out[4] = {};
  ASSERT_TRUE(FromHex("000fa0ff", out, 4));
  EXPECT_EQ(0, memcmp(out, bytes, 4));
  EXPECT_FALSE(FromHex("000FA0FF", out, 4));  // upper case
  EXPECT_FALSE(FromHex("000fa0f", out, 4));   // odd length
  EXPECT_FALSE(FromHex("000fa0ff00", out, 4));
  EXPECT_FALSE(FromHex("000fa0fg", out, 4));
  EXPECT_TRUE(FromHex("", out, 0));
}

// Expected results below agree with opentelemetry-api's TraceState.from_header (1.45).
struct TracestateCase {
  const char* header;
  bool valid;
  const char* normalised;
};

TEST(TracestateTest, Vectors) {
  const TracestateCase cases[] = {
      {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
      {"", true, ""},
      {" , ,", true, ""},
      {"a=1", true, "a=1"},
      // Optional whitespace around members is dropped, empty members too.
      {" rojo=1 ,\tcongo=2 \t", true, "rojo=1,congo=2"},
      {",,a=1,, ,\t,b=2,", true, "a=1,b=2"},
      {"a=1 ,b=2", true, "a=1,b=2"},
      // Keys: simple keys start with a lower-case letter.
      {"a0_-*/=1", true, "a0_-*/=1"},
      {"A=1", false, ""},
      {"aB=1", false, ""},
      {"1a=1", false, ""},
      {"_a=1", false, ""},
      {"=1", false, ""},
      {"a b=1", false, ""},
      {"a =1", false, ""},
      // Multi-tenant keys: tenant@system; the tenant may start with a digit, the system not.
      {"t@s=1", true, "t@s=1"},
      {"1tenant@sys=1", true, "1tenant@sys=1"},
      {"t@s_-*/9=1", true, "t@s_-*/9=1"},
      {"tenant@1sys=1", false, ""},
      {"_t@s=1", false, ""},
      {"@s=1", false, ""},
      {"t@=1", false, ""},
      {"a@b@c=1", false, ""},
      // Values: printable ASCII but ',' and '=', not ending in a space.
      {"a=b c", true, "a=b c"},
      {"a= b", true, "a= b"},
      {"a=~!", true, "a=~!"},
      {"a=", false, ""},
      {"a= ", false, ""},
      {"a", false, ""},
      {"a=b=c", false, ""},
      {"a=b\tc", false, ""},
      {"a=b,c", false, ""},
      {"a=\x7f", false, ""},
      {"a=\xc3\xa9", false, ""},
      // One entry per key.
      {"a=1,a=2", false, ""},
      {"a=1,b=2,a=3", false, ""},
      {"t@s=1,t@s=2", false, ""},
      {"t@s=1,t=2,s=3", true, "t@s=1,t=2,s=3"},
  };
  for (const auto& c : cases) {
    std::string out = "stale";
    EXPECT_EQ(NormalizeTracestate(c.header, out), c.valid) << '"' << c.header << '"';
    EXPECT_EQ(out, c.normalised) << '"' << c.header << '"';
  }
}

TEST(TracestateTest, KeyAndValueLengthLimits) {
  std::string out;
  EXPECT_TRUE(NormalizeTracestate(std::string(256, 'a') + "=1", out));
  EXPECT_FALSE(NormalizeTracestate(std::string(257, 'a') + "=1", out));
  EXPECT_TRUE(NormalizeTracestate("a=" + std::string(256, 'v'), out));
  EXPECT_FALSE(NormalizeTracestate("a=" + std::string(257, 'v'), out));
  EXPECT_TRUE(NormalizeTracestate(std::string(241, 't') + "@s=1", out));
  EXPECT_FALSE(NormalizeTracestate(std::string(242, 't') + "@s=1", out));
  EXPECT_TRUE(NormalizeTracestate("t@" + std::string(14, 's') + "=1", out));
  EXPECT_FALSE(NormalizeTracestate("t@" + std::string(15, 's') + "=1", out));
}

std::string Members(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + ("k" + std::to_string(i)) + "=v";
  return s;
}

TEST(TracestateTest, AtMost32Members) {
  std::string out;
  EXPECT_TRUE(NormalizeTracestate(Members(32), out));
  EXPECT_EQ(out, Members(32));
  EXPECT_FALSE(NormalizeTracestate(Members(33), out));
  EXPECT_EQ(out, "");
  // Empty members do not count.
  EXPECT_TRUE(NormalizeTracestate(",," + Members(32) + ", ,\t,", out));
  EXPECT_EQ(out, Members(32));
}

TEST(TracestateTest, HeadersLongerThanOpentelemetryAcceptsAreIgnored) {
  // 32 members of 256-character values: valid by the grammar, but 8,000+ bytes.
  std::string big;
  for (int i = 0; i < 32; ++i) {
    big += (i ? "," : "") + ("k" + std::to_string(i)) + "=" + std::string(250, 'v');
  }
  ASSERT_LE(big.size(), kMaxTracestateLength);
  std::string out;
  EXPECT_TRUE(NormalizeTracestate(big, out));
  std::string padded = big + std::string(kMaxTracestateLength - big.size(), ' ');
  EXPECT_TRUE(NormalizeTracestate(padded, out));
  EXPECT_EQ(out, big);
  EXPECT_FALSE(NormalizeTracestate(padded + " ", out));
  EXPECT_EQ(out, "");
}

TEST(TracestateTest, NormalisingTwiceChangesNothing) {
  for (const char* header :
       {" a=1 , b=2 ,,", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "a= b", ",,"}) {
    std::string once, twice;
    ASSERT_TRUE(NormalizeTracestate(header, once)) << header;
    ASSERT_TRUE(NormalizeTracestate(once, twice)) << header;
    EXPECT_EQ(once, twice);
  }
}

}  // namespace
}  // namespace djtrace
