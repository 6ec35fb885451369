#include <gtest/gtest.h>

#include <string>

#include "pii/masking.h"

namespace djtrace::pii {
namespace {

using D = Detector;

std::string Mask(D d, MaskStyle style, std::string_view match, const HmacSha256* hmac = nullptr,
                 size_t hex = 16) {
  std::string out;
  AppendMask(d, style, match, hmac, hex, &out);
  return out;
}

TEST(MaskingTest, FullIsOneMarker) {
  for (size_t i = 0; i < kDetectorCount; ++i) {
    EXPECT_EQ(Mask(static_cast<D>(i), MaskStyle::kFull, "whatever"), "[REDACTED]");
  }
  EXPECT_EQ(Mask(D::kCount, MaskStyle::kFull, "custom"), "[REDACTED]");
}

TEST(MaskingTest, PartialEmail) {
  EXPECT_EQ(Mask(D::kEmail, MaskStyle::kPartial, "alice@example.com"), "al***@example.com");
  EXPECT_EQ(Mask(D::kEmail, MaskStyle::kPartial, "bo@example.com"), "b***@example.com");
  EXPECT_EQ(Mask(D::kEmail, MaskStyle::kPartial, "j@x.io"), "***@x.io");
}

TEST(MaskingTest, PartialNumbersKeepGroupingAndLastDigits) {
  EXPECT_EQ(Mask(D::kCreditCard, MaskStyle::kPartial, "4242 4242 4242 4242"),
            "**** **** **** 4242");
  EXPECT_EQ(Mask(D::kCreditCard, MaskStyle::kPartial, "4111-1111-1111-1111"),
            "****-****-****-1111");
  EXPECT_EQ(Mask(D::kCreditCard, MaskStyle::kPartial, "378282246310005"), "***********0005");
  EXPECT_EQ(Mask(D::kPhone, MaskStyle::kPartial, "+44 20 7946 0958"), "+** ** **** **58");
  EXPECT_EQ(Mask(D::kPhone, MaskStyle::kPartial, "(415) 555-2671"), "(***) ***-**71");
  EXPECT_EQ(Mask(D::kSsn, MaskStyle::kPartial, "078-05-1120"), "***-**-1120");
  EXPECT_EQ(Mask(D::kIban, MaskStyle::kPartial, "GB82 WEST 1234 5698 7654 32"),
            "GB** **** **** **** **54 32");
}

TEST(MaskingTest, PartialAddressesKeepTheNetwork) {
  EXPECT_EQ(Mask(D::kIpv4, MaskStyle::kPartial, "192.168.1.10"), "192.168.1.0/24");
  EXPECT_EQ(Mask(D::kIpv6, MaskStyle::kPartial, "2001:db8:85a3::8a2e:370:7334"),
            "2001:db8:85a3::/48");
  EXPECT_EQ(Mask(D::kIpv6, MaskStyle::kPartial, "fe80::1"), "fe80::/48");
  EXPECT_EQ(Mask(D::kClientAddress, MaskStyle::kPartial, "203.0.113.7"), "203.0.113.0/24");
  EXPECT_EQ(Mask(D::kClientAddress, MaskStyle::kPartial, "not an address"), "[REDACTED]");
}

TEST(MaskingTest, PartialSecretsKeepOnlyTheTypePrefix) {
  EXPECT_EQ(Mask(D::kGithubToken, MaskStyle::kPartial, "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            "ghp_[REDACTED]");
  EXPECT_EQ(Mask(D::kGithubToken, MaskStyle::kPartial, "github_pat_11ABC_def"),
            "github_pat_[REDACTED]");
  EXPECT_EQ(Mask(D::kStripeKey, MaskStyle::kPartial, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            "sk_live_[REDACTED]");
  EXPECT_EQ(Mask(D::kSlackToken, MaskStyle::kPartial, "xoxb-1234-abcd"), "xoxb-[REDACTED]");
  EXPECT_EQ(Mask(D::kAwsAccessKey, MaskStyle::kPartial, "AKIAIOSFODNN7EXAMPLE"), "AKIA[REDACTED]");
  EXPECT_EQ(Mask(D::kJwt, MaskStyle::kPartial, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
            "eyJhbGciOiJIUzI1NiJ9.[REDACTED]");
  EXPECT_EQ(Mask(D::kBearerToken, MaskStyle::kPartial, "abcdef123456"), "[REDACTED]");
  EXPECT_EQ(Mask(D::kSensitiveParam, MaskStyle::kPartial, "hunter2"), "[REDACTED]");
  EXPECT_EQ(Mask(D::kCount, MaskStyle::kPartial, "custom"), "[REDACTED]");
}

TEST(MaskingTest, PseudonymsAreStableKeyedAndSized) {
  const HmacSha256 key("test-key");
  const HmacSha256 other("other-key");
  const std::string a = Mask(D::kEmail, MaskStyle::kPseudonymise, "alice@example.com", &key);
  EXPECT_EQ(a, "pseudo:f4ec100211f13d19");  // HMAC-SHA256 reference from Python's hmac module
  EXPECT_EQ(Mask(D::kPhone, MaskStyle::kPseudonymise, "alice@example.com", &key), a);
  EXPECT_NE(Mask(D::kEmail, MaskStyle::kPseudonymise, "alice@example.com", &other), a);
  EXPECT_NE(Mask(D::kEmail, MaskStyle::kPseudonymise, "bob@example.com", &key), a);
  EXPECT_EQ(Mask(D::kEmail, MaskStyle::kPseudonymise, "x", &key, 64).size(), 7u + 64u);
  // Without a key the style cannot be honoured and falls back to full.
  EXPECT_EQ(Mask(D::kEmail, MaskStyle::kPseudonymise, "alice@example.com", nullptr), "[REDACTED]");
}

TEST(MaskingTest, StyleNames) {
  for (MaskStyle s : {MaskStyle::kFull, MaskStyle::kPartial, MaskStyle::kPseudonymise}) {
    EXPECT_EQ(MaskStyleFromName(MaskStyleName(s)), s);
  }
  EXPECT_EQ(MaskStyleFromName("pseudonymize"), MaskStyle::kPseudonymise);
  EXPECT_FALSE(MaskStyleFromName("hash").has_value());
}

}  // namespace
}  // namespace djtrace::pii
