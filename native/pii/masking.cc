#include "pii/masking.h"

#include <array>
#include <cstdio>

namespace djtrace::pii {
namespace {

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsAlnum(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Replaces every digit but the last `keep` with '*'; separators and '+' stay.
void AppendKeepLastDigits(std::string_view match, size_t keep, std::string* out) {
  size_t digits = 0;
  for (char c : match) digits += IsDigit(c) ? 1 : 0;
  size_t seen = 0;
  for (char c : match) {
    if (IsDigit(c)) {
      out->push_back(seen + keep < digits ? '*' : c);
      ++seen;
    } else {
      out->push_back(c);
    }
  }
}

void AppendPartialEmail(std::string_view match, std::string* out) {
  const size_t at = match.find('@');
  if (at == std::string_view::npos) {
    out->append(kFullMask);
    return;
  }
  const size_t keep = at >= 3 ? 2 : (at == 2 ? 1 : 0);
  out->append(match.substr(0, keep));
  out->append("***");
  out->append(match.substr(at));
}

void AppendPartialIban(std::string_view match, std::string* out) {
  size_t alnum = 0;
  for (char c : match) alnum += IsAlnum(c) ? 1 : 0;
  size_t seen = 0;
  for (char c : match) {
    if (!IsAlnum(c)) {
      out->push_back(c);
      continue;
    }
    out->push_back(seen < 2 || seen + 4 >= alnum ? c : '*');
    ++seen;
  }
}

bool AppendIpv4Prefix(std::string_view match, std::string* out) {
  int octets[4];
  int count = 0, value = -1;
  for (char c : match) {
    if (IsDigit(c)) {
      value = (value < 0 ? 0 : value * 10) + (c - '0');
      if (value > 255) return false;
    } else if (c == '.' && value >= 0 && count < 3) {
      octets[count++] = value;
      value = -1;
    } else {
      return false;
    }
  }
  if (count != 3 || value < 0) return false;
  char buf[32];
  const int n = std::snprintf(buf, sizeof(buf), "%d.%d.%d.0/24", octets[0], octets[1], octets[2]);
  out->append(buf, static_cast<size_t>(n));
  return true;
}

bool AppendIpv6Prefix(std::string_view match, std::string* out) {
  std::array<uint16_t, 8> groups;
  if (!ParseIpv6Address(match, &groups)) return false;
  char buf[48];
  int n;
  if (groups[1] == 0 && groups[2] == 0) {
    n = std::snprintf(buf, sizeof(buf), "%x::/48", groups[0]);
  } else if (groups[2] == 0) {
    n = std::snprintf(buf, sizeof(buf), "%x:%x::/48", groups[0], groups[1]);
  } else {
    n = std::snprintf(buf, sizeof(buf), "%x:%x:%x::/48", groups[0], groups[1], groups[2]);
  }
  out->append(buf, static_cast<size_t>(n));
  return true;
}

// Length of the public prefix that names a token's type (ghp_, sk_live_, xoxb-, AKIA).
size_t TypePrefixLength(Detector detector, std::string_view match) {
  switch (detector) {
    case Detector::kGithubToken:
      return match.substr(0, 11) == "github_pat_" ? 11 : 4;
    case Detector::kStripeKey: {
      const size_t second = match.find('_', 3);
      return second == std::string_view::npos ? 0 : second + 1;
    }
    case Detector::kSlackToken:
      return 5;
    case Detector::kAwsAccessKey:
      return 4;
    case Detector::kJwt: {
      const size_t dot = match.find('.');
      return dot == std::string_view::npos ? 0 : dot + 1;
    }
    default:
      return 0;
  }
}

}  // namespace

std::string_view MaskStyleName(MaskStyle style) noexcept {
  switch (style) {
    case MaskStyle::kFull:
      return "full";
    case MaskStyle::kPartial:
      return "partial";
    case MaskStyle::kPseudonymise:
      return "pseudonymise";
  }
  return "full";
}

std::optional<MaskStyle> MaskStyleFromName(std::string_view name) noexcept {
  if (name == "full") return MaskStyle::kFull;
  if (name == "partial") return MaskStyle::kPartial;
  if (name == "pseudonymise" || name == "pseudonymize") return MaskStyle::kPseudonymise;
  return std::nullopt;
}

void AppendPseudonym(std::string_view value, const HmacSha256& hmac, size_t hex_chars,
                     std::string* out) {
  out->append(kPseudonymPrefix);
  AppendHex(hmac.Sign(value), hex_chars, out);
}

void AppendMask(Detector detector, MaskStyle style, std::string_view match, const HmacSha256* hmac,
                size_t hex_chars, std::string* out) {
  if (style == MaskStyle::kPseudonymise && hmac != nullptr) {
    AppendPseudonym(match, *hmac, hex_chars, out);
    return;
  }
  if (style != MaskStyle::kPartial) {
    out->append(kFullMask);
    return;
  }
  switch (detector) {
    case Detector::kEmail:
      AppendPartialEmail(match, out);
      return;
    case Detector::kCreditCard:
    case Detector::kSsn:
      AppendKeepLastDigits(match, 4, out);
      return;
    case Detector::kPhone:
      AppendKeepLastDigits(match, 2, out);
      return;
    case Detector::kIban:
      AppendPartialIban(match, out);
      return;
    case Detector::kIpv4:
    case Detector::kIpv6:
    case Detector::kClientAddress:
      if (AppendIpv4Prefix(match, out) || AppendIpv6Prefix(match, out)) return;
      out->append(kFullMask);
      return;
    default: {
      const size_t prefix = TypePrefixLength(detector, match);
      out->append(match.substr(0, prefix));
      out->append(kFullMask);
      return;
    }
  }
}

}  // namespace djtrace::pii
