#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pii/detectors.h"

namespace djtrace::pii {
namespace {

struct Found {
  std::string text;
  Detector detector;
  bool operator==(const Found& o) const { return text == o.text && detector == o.detector; }
};
std::ostream& operator<<(std::ostream& os, const Found& f) {
  return os << DetectorName(f.detector) << ":'" << f.text << "'";
}

std::vector<Found> ScanAll(std::string_view text, DetectorSet set = DetectorSet::All()) {
  PiiScanner scanner(set);
  std::vector<DetectorMatch> matches;
  scanner.Scan(text, &matches);
  std::vector<Found> out;
  size_t last_end = 0;
  for (const auto& m : matches) {
    EXPECT_LE(last_end, m.begin) << "overlap or disorder";
    EXPECT_LT(m.begin, m.end);
    EXPECT_LE(m.end, text.size());
    last_end = m.end;
    out.push_back({std::string(text.substr(m.begin, m.end - m.begin)), m.detector});
  }
  return out;
}

using D = Detector;

TEST(DetectorNamesTest, RoundTrip) {
  for (size_t i = 0; i < kDetectorCount; ++i) {
    const auto d = static_cast<Detector>(i);
    EXPECT_EQ(DetectorFromName(DetectorName(d)), d);
  }
  EXPECT_FALSE(DetectorFromName("nope").has_value());
  EXPECT_TRUE(IsValueDetector(D::kSensitiveParam));
  EXPECT_FALSE(IsValueDetector(D::kSensitiveKey));
}

TEST(ValidatorsTest, Luhn) {
  EXPECT_TRUE(LuhnValid("4242424242424242"));
  EXPECT_TRUE(LuhnValid("79927398713"));
  EXPECT_FALSE(LuhnValid("4242424242424241"));
  EXPECT_FALSE(LuhnValid(""));
  EXPECT_FALSE(LuhnValid("42x2"));
}

TEST(ValidatorsTest, CardPrefixes) {
  EXPECT_TRUE(PlausibleCardPrefix("4242424242424242"));
  EXPECT_TRUE(PlausibleCardPrefix("5555555555554444"));
  EXPECT_TRUE(PlausibleCardPrefix("2223003122003222"));
  EXPECT_TRUE(PlausibleCardPrefix("378282246310005"));
  EXPECT_TRUE(PlausibleCardPrefix("6011111111111117"));
  EXPECT_TRUE(PlausibleCardPrefix("3530111333300000"));
  EXPECT_TRUE(PlausibleCardPrefix("30569309025904"));
  EXPECT_FALSE(PlausibleCardPrefix("1234567890123456"));
  EXPECT_FALSE(PlausibleCardPrefix("9999999999999995"));
  EXPECT_FALSE(PlausibleCardPrefix("3782822463100050"));  // Amex is 15 digits
  EXPECT_FALSE(PlausibleCardPrefix("2100000000000000"));  // below the 2-series range
  EXPECT_FALSE(PlausibleCardPrefix("424242424242"));      // too short
}

TEST(ValidatorsTest, IbanAndSsn) {
  EXPECT_TRUE(IbanChecksumValid("GB82WEST12345698765432"));
  EXPECT_TRUE(IbanChecksumValid("DE89370400440532013000"));
  EXPECT_FALSE(IbanChecksumValid("GB82WEST12345698765433"));
  EXPECT_FALSE(IbanChecksumValid("GB82 WEST 1234 5698 7654 32"));  // compact form only
  EXPECT_FALSE(IbanChecksumValid("GB82"));
  EXPECT_TRUE(ValidSsnParts(78, 5, 1120));
  EXPECT_FALSE(ValidSsnParts(0, 12, 3456));
  EXPECT_FALSE(ValidSsnParts(666, 12, 3456));
  EXPECT_FALSE(ValidSsnParts(900, 12, 3456));
  EXPECT_FALSE(ValidSsnParts(123, 0, 4567));
  EXPECT_FALSE(ValidSsnParts(123, 45, 0));
}

TEST(ValidatorsTest, Ipv6Parsing) {
  std::array<uint16_t, 8> g;
  ASSERT_TRUE(ParseIpv6Address("2001:db8::8a2e:370:7334", &g));
  EXPECT_EQ(g, (std::array<uint16_t, 8>{0x2001, 0xdb8, 0, 0, 0, 0x8a2e, 0x370, 0x7334}));
  ASSERT_TRUE(ParseIpv6Address("::ffff:192.0.2.128", &g));
  EXPECT_EQ(g, (std::array<uint16_t, 8>{0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0280}));
  ASSERT_TRUE(ParseIpv6Address("::1", &g));
  EXPECT_EQ(g[7], 1);
  EXPECT_FALSE(ParseIpv6Address("1::2::3", &g));
  EXPECT_FALSE(ParseIpv6Address("1:2:3:4:5:6:7", &g));
  EXPECT_FALSE(ParseIpv6Address("1:2:3:4:5:6:7:8:9", &g));
  EXPECT_FALSE(ParseIpv6Address("12345::1", &g));
  EXPECT_FALSE(ParseIpv6Address("::", &g));  // no digit: not worth calling an address
  EXPECT_FALSE(ParseIpv6Address("", &g));
}

TEST(ScannerTest, MatchesCoverOnlyTheSecretPart) {
  EXPECT_EQ(ScanAll("https://bob:hunter2@db.example.com/"),
            (std::vector<Found>{{"hunter2", D::kUrlCredentials}}));
  EXPECT_EQ(ScanAll("a=1&password=p%40ss&b=2"),
            (std::vector<Found>{{"p%40ss", D::kSensitiveParam}}));
  EXPECT_EQ(ScanAll("Bearer abc123def456"),
            (std::vector<Found>{{"abc123def456", D::kBearerToken}}));
  EXPECT_EQ(ScanAll("{\"token\": \"a\\\"b\"}"),
            (std::vector<Found>{{"a\\\"b", D::kSensitiveParam}}));
  EXPECT_EQ(ScanAll("password: 'it''s'"), (std::vector<Found>{{"it", D::kSensitiveParam}}));
}

TEST(ScannerTest, ValuesAlreadyRedactedAreLeftAlone) {
  // An integration writes the semantic conventions' "REDACTED" into url.full; the processor's
  // pass must not turn it into "[REDACTED]" (a mix of markers in one URL).
  EXPECT_TRUE(ScanAll("https://REDACTED:REDACTED@h.example/x?token=REDACTED&a=1").empty());
  EXPECT_TRUE(ScanAll("https://bob:[REDACTED]@h/?password=[REDACTED]").empty());
  // Only the whole value counts as a marker.
  EXPECT_EQ(
      ScanAll("https://bob:REDACTEDx@h/?token=xREDACTED"),
      (std::vector<Found>{{"REDACTEDx", D::kUrlCredentials}, {"xREDACTED", D::kSensitiveParam}}));
}

TEST(ScannerTest, SeveralDetectorsInOneValue) {
  const std::string text =
      "user alice@example.com from 203.0.113.7 paid 4242-4242-4242-4242 call +44 20 7946 0958";
  EXPECT_EQ(ScanAll(text), (std::vector<Found>{{"alice@example.com", D::kEmail},
                                               {"203.0.113.7", D::kIpv4},
                                               {"4242-4242-4242-4242", D::kCreditCard},
                                               {"+44 20 7946 0958", D::kPhone}}));
}

TEST(ScannerTest, DisabledDetectorsDoNotFire) {
  DetectorSet only_email;
  only_email.Add(D::kEmail);
  EXPECT_EQ(ScanAll("a@example.com 4242424242424242 10.0.0.1", only_email),
            (std::vector<Found>{{"a@example.com", D::kEmail}}));
  EXPECT_TRUE(ScanAll("a@example.com", DetectorSet()).empty());
}

TEST(ScannerTest, TriggerTableFastPath) {
  DetectorSet secrets;
  secrets.Add(D::kCreditCard).Add(D::kSensitiveParam);
  PiiScanner scanner(secrets);
  EXPECT_FALSE(scanner.MayMatch("GET users list ok"));
  EXPECT_TRUE(scanner.MayMatch("page=2"));
  EXPECT_TRUE(scanner.MayMatch("id 7"));
  EXPECT_FALSE(scanner.MayMatch("mail@example.com"));  // '@' is not a trigger without email
}

TEST(ScannerTest, NumberBoundaries) {
  EXPECT_TRUE(ScanAll("ORD-4242424242424242").empty());
  EXPECT_TRUE(ScanAll("4242424242424242x").empty());
  EXPECT_TRUE(ScanAll("x4242424242424242").empty());
  EXPECT_TRUE(ScanAll("4242424242424242.5").empty());
  EXPECT_EQ(ScanAll("(4242424242424242)"),
            (std::vector<Found>{{"4242424242424242", D::kCreditCard}}));
  // A space-separated tail does not hide a phone or a card.
  EXPECT_EQ(ScanAll("Call 020 7946 0958 12 times"),
            (std::vector<Found>{{"020 7946 0958", D::kPhone}}));
  EXPECT_EQ(ScanAll("4242 4242 4242 4242 2025"),
            (std::vector<Found>{{"4242 4242 4242 4242", D::kCreditCard}}));
  // More groups than a token keeps (12): a prefix still yields the phone. (Trailing short
  // groups may be taken with it, up to E.164's 15 digits: over-redaction, never a leak.)
  const auto long_tail = ScanAll("+44 20 7946 0958 1 2 3 4 5 6 7 8 9 10");
  ASSERT_EQ(long_tail.size(), 1u);
  EXPECT_EQ(long_tail[0].detector, D::kPhone);
  EXPECT_EQ(long_tail[0].text.rfind("+44 20 7946 0958", 0), 0u);
  EXPECT_EQ(ScanAll("10.0.0.1:8080 and 10.0.0.0/8"),
            (std::vector<Found>{{"10.0.0.1", D::kIpv4}, {"10.0.0.0", D::kIpv4}}));
}

TEST(ScannerTest, AdversarialInputsFinish) {
  // Each of these would be quadratic (or worse) with naive per-position re-scanning; they must
  // finish and still produce ordered, non-overlapping matches.
  std::string jwt_chain;
  for (int i = 0; i < 20000; ++i) jwt_chain += "eyJa-";
  ScanAll(jwt_chain);
  std::string pem;
  for (int i = 0; i < 5000; ++i) pem += "-----BEGIN PRIVATE KEY----- x ";
  EXPECT_EQ(ScanAll(pem).size(), 5000u);
  ScanAll(std::string(200000, '1'));
  ScanAll(std::string(100000, ':'));
  ScanAll(std::string(100000, '@'));
  std::string spaced;
  for (int i = 0; i < 20000; ++i) spaced += "1 ";
  ScanAll(spaced);
  std::string keys;
  for (int i = 0; i < 10000; ++i) keys += "aaaaaaaa.";
  keys += "=x";
  ScanAll(keys);
  std::string urls;
  for (int i = 0; i < 10000; ++i) urls += "a://" + std::string(100, 'b');
  ScanAll(urls);
}

}  // namespace
}  // namespace djtrace::pii
