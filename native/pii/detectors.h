// The built-in PII and secret detectors: one hand-written scanner that walks a value once,
// skips bytes that cannot begin (or anchor) any enabled detector with a 256-entry table, and on
// a trigger byte runs only the detectors that byte can anchor, each with bounded look-behind
// and look-ahead. There is no regular-expression engine and no backtracking, so the cost is
// linear in the value with a small constant.
//
// Anchors (why each detector is triggered where it is):
//   digit      SSN, payment card, phone, IPv4 (at the start of a number token); IBAN (the check
//              digits right after a two-letter country code)
//   + (        phone numbers written +44 ..., (415) ...
//   @          email (the local part is found by looking back at most 64 bytes)
//   :          URL credentials (scheme://user:pass@host), "key": value and key: value pairs,
//              IPv6 (looking back at most 4 hex digits for the first group)
//   =          key=value pairs (query strings, form bodies, cookies, env-style text)
//   -          PEM private key blocks (-----BEGIN), Slack tokens (xoxb-)
//   _          GitHub tokens (ghp_, github_pat_), Stripe keys (sk_live_)
//   A B b J    AWS access key ids (AKIA, ASIA), Bearer/Basic credentials, JWTs (eyJ)
// Matches never overlap and come out in text order; look-behind never crosses the end of the
// previous match.
//
// Precision rules, with the hard negatives they exist for:
//   - A number token must start and end on a token boundary: not inside a word, not after
//     "<alnum>-" or "<alnum>." (ORD-2024-000123, v1.2.3, UUID groups), not after "<digit>,",
//     "<digit>:" or "<digit>/" (1,234.56, 12:30:45, 2024/01/15), and not be followed by a word
//     character or by [.,:-/]<digit> (2024-01-15T10:00, 1500ms, trace ids).
//   - Card: 13-19 digits, contiguous or grouped 4-4-4-4(-3), 4-6-5, 4-6-4 with one kind of
//     separator, a plausible IIN (Visa 4, Mastercard 51-55/2221-2720, Amex 34/37, Diners
//     30/36/38-39, JCB 35, Discover/UnionPay/Maestro 6, Maestro 50/56-58) and a valid Luhn sum.
//   - SSN: ddd-dd-dddd (or with spaces), area not 000, 666 or 9xx, group not 00, serial not 0000.
//   - Phone: +<country code> with 8-15 digits in total; NANP (415) 555-2671, 415-555-2671,
//     415.555.2671, 1-415-555-2671 with area and exchange starting 2-9; national numbers with a
//     trunk 0 (020 7946 0958, 07700 900123, 01 23 45 67 89) of 9-12 digits in groups of >= 2.
//     Bare digit runs without '+' are never phones (ids, timestamps, order numbers).
//   - IPv4: four decimal octets <= 255 without leading zeros, optionally followed by :port or
//     /prefix, not followed by -<alnum> or .<alnum> (10.0.0.1-beta) and not after "<alnum>/"
//     (Chrome/120.0.0.0 user agents).
//   - IPv6: 8 groups, or fewer with one "::", optional embedded IPv4, at least one decimal digit
//     (so C++ names like std::move and words like "cafe::bad" are not addresses).
//   - Email: local part [A-Za-z0-9._%+'-] up to 64, domain of >= 2 labels whose last label is
//     2-63 letters and not an image extension (icon@2x.png).
//   - Bearer token: >= 8 token68 characters containing a digit, a symbol, or mixed case past
//     the first letter (so "bearer authentication" is prose). Basic: base64 that decodes to
//     text containing ':' (user:password).
//   - JWT: eyJ..., three base64url segments (or five, JWE), the first decoding to {...}, not
//     itself the tail of a longer dotted name.
//   - key=value / "key": value: the key (its last '.' or '[' segment, case-insensitive, '-' as
//     '_') is pwd, pass, passcode, auth, authorization, proxy_authorization, cookie,
//     set_cookie, session, sessionid, session_id, session_key, csrf, xsrf,
//     csrfmiddlewaretoken, sig, otp, jwt or api_sig; or contains password, passwd, passphrase,
//     secret, api_key, apikey, private_key, privatekey, access_key, accesskey, credential,
//     signature or sessionid; or has "token" ending a '_' part (access_token, csrftoken; not
//     max_tokens). Only the value is matched; quoted values run to the closing quote (escapes
//     honoured, also \"...\" inside JSON strings); Authorization:/Cookie: run to the end of
//     the line; null/true/false and values already masked are left alone. A key ending in
//     secret_access_key with a 40-character value is reported as aws_secret_key.
//   - URL credentials: only the password of scheme://user:password@host is matched; the user
//     name stays (it tells which account connected, which is what a trace is read for).
//   - IBAN: country letters, check digits 02-98, 15-34 characters, contiguous or in groups of
//     four separated by single spaces, and mod-97 == 1.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace djtrace::pii {

// Every rule that can redact something: value detectors first, then key rules. The names are
// the counter names and the configuration names.
enum class Detector : uint8_t {
  kEmail,           // "email"
  kPhone,           // "phone"
  kSsn,             // "ssn"
  kCreditCard,      // "credit_card"
  kIban,            // "iban"
  kJwt,             // "jwt"
  kBearerToken,     // "bearer_token"
  kBasicAuth,       // "basic_auth"
  kAwsAccessKey,    // "aws_access_key"
  kAwsSecretKey,    // "aws_secret_key"
  kGithubToken,     // "github_token"
  kStripeKey,       // "stripe_key"
  kSlackToken,      // "slack_token"
  kPrivateKey,      // "private_key"
  kIpv4,            // "ipv4"
  kIpv6,            // "ipv6"
  kUrlCredentials,  // "url_credentials"
  kSensitiveParam,  // "sensitive_param"
  // Key rules: they act on the attribute key, not on the value text.
  kSensitiveKey,   // "sensitive_key": authorization, cookie, *password*, *token ...
  kClientAddress,  // "client_address": client.address and older spellings
  kEnduser,        // "enduser": enduser.* and user.*
  kCount
};

inline constexpr size_t kDetectorCount = static_cast<size_t>(Detector::kCount);
inline constexpr size_t kValueDetectorCount = static_cast<size_t>(Detector::kSensitiveKey);

std::string_view DetectorName(Detector detector) noexcept;
std::optional<Detector> DetectorFromName(std::string_view name) noexcept;
inline bool IsValueDetector(Detector d) noexcept {
  return static_cast<size_t>(d) < kValueDetectorCount;
}

// A set of detectors as a bit mask.
class DetectorSet {
 public:
  constexpr DetectorSet() = default;
  static constexpr DetectorSet All() { return DetectorSet((uint32_t{1} << kDetectorCount) - 1); }
  constexpr bool Has(Detector d) const { return (bits_ >> static_cast<int>(d)) & 1; }
  constexpr DetectorSet& Add(Detector d) {
    bits_ |= uint32_t{1} << static_cast<int>(d);
    return *this;
  }
  constexpr DetectorSet& Remove(Detector d) {
    bits_ &= ~(uint32_t{1} << static_cast<int>(d));
    return *this;
  }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool AnyValueDetector() const {
    return (bits_ & ((uint32_t{1} << kValueDetectorCount) - 1)) != 0;
  }
  constexpr uint32_t bits() const { return bits_; }

 private:
  constexpr explicit DetectorSet(uint32_t bits) : bits_(bits) {}
  uint32_t bits_ = 0;
};

struct DetectorMatch {
  size_t begin;
  size_t end;
  Detector detector;
};

// The scanner for one set of enabled value detectors. Immutable and thread-safe.
class PiiScanner {
 public:
  explicit PiiScanner(DetectorSet enabled) noexcept;

  // Appends the matches in `text` to *out, in text order, without overlaps.
  void Scan(std::string_view text, std::vector<DetectorMatch>* out) const;

  // False when `text` has no byte that could anchor an enabled detector (the fast path).
  bool MayMatch(std::string_view text) const noexcept;

  DetectorSet enabled() const noexcept { return enabled_; }

 private:
  DetectorSet enabled_;
  std::array<bool, 256> trigger_{};
};

// Validators, exposed for tests and for the masking code.
bool LuhnValid(std::string_view digits) noexcept;                // digits only
bool PlausibleCardPrefix(std::string_view digits) noexcept;      // digits only, 13-19 of them
bool IbanChecksumValid(std::string_view compact_iban) noexcept;  // [A-Z0-9], no spaces
bool ValidSsnParts(int area, int group, int serial) noexcept;
// Parses a complete IPv6 address (with optional embedded IPv4) into 8 groups.
bool ParseIpv6Address(std::string_view text, std::array<uint16_t, 8>* groups) noexcept;

// Attribute-name and parameter-name classification shared with the key rules. `name` is one
// key segment; matching ignores ASCII case and treats '-' like '_'.
bool IsSensitiveParamName(std::string_view name) noexcept;

}  // namespace djtrace::pii
