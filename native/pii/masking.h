// What a redacted value is replaced with.
//
//   full          "[REDACTED]" for every detector (one fixed marker: it says that something was
//                 there without saying what, and a collector-side search finds every redaction).
//   partial       keeps what helps debugging and identifies nobody:
//                   email           al***@example.com (first two characters of the local part;
//                                   one if it has two, none if it has one)
//                   credit_card     **** **** **** 4242 (last 4 digits, original grouping)
//                   phone           +** ** **** **58 (last 2 digits, separators kept)
//                   ssn             ***-**-6789 (last 4 digits)
//                   iban            GB** **** **** **** **54 32 (country and last 4 kept)
//                   ipv4, ipv6      the network prefix: 192.168.1.0/24, 2001:db8:85a3::/48
//                   client_address  as ipv4/ipv6 when the value is an address, else full
//                   jwt             the header segment (algorithm, type) + ".[REDACTED]"
//                   github_token, stripe_key, slack_token, aws_access_key
//                                   the public type prefix + "[REDACTED]", e.g. ghp_[REDACTED]
//                   every other detector and custom rules: same as full
//   pseudonymise  "pseudo:" + the first N (default 16) lowercase hex digits of
//                 HMAC-SHA256(secret key, matched text): one value always maps to one token, so
//                 spans stay joinable on it, and without the key a token cannot be reversed or
//                 checked against a guess.
// No replacement is longer than 71 bytes (a 64-digit pseudonym) or the match, so the redacted value
// stays within a fixed factor of the input (see Redactor).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pii/detectors.h"
#include "pii/hmac.h"

namespace djtrace::pii {

enum class MaskStyle : uint8_t { kFull, kPartial, kPseudonymise };

inline constexpr std::string_view kFullMask = "[REDACTED]";
inline constexpr std::string_view kPseudonymPrefix = "pseudo:";

std::string_view MaskStyleName(MaskStyle style) noexcept;
// Accepts "full", "partial", "pseudonymise" (and the spelling "pseudonymize").
std::optional<MaskStyle> MaskStyleFromName(std::string_view name) noexcept;

// Appends "pseudo:<hex>" for `value`.
void AppendPseudonym(std::string_view value, const HmacSha256& hmac, size_t hex_chars,
                     std::string* out);

// Appends the replacement of `match`, which `detector` found (Detector::kCount stands for a
// custom rule). A pseudonymise style without a key falls back to full.
void AppendMask(Detector detector, MaskStyle style, std::string_view match, const HmacSha256* hmac,
                size_t hex_chars, std::string* out);

}  // namespace djtrace::pii
