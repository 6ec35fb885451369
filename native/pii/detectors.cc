#include "pii/detectors.h"

#include <cstring>

namespace djtrace::pii {
namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);

// Character classes, one table lookup per byte.
enum : uint16_t {
  kDigitC = 1 << 0,
  kUpperC = 1 << 1,
  kLowerC = 1 << 2,
  kHexC = 1 << 3,
  kB64UrlC = 1 << 4,      // A-Z a-z 0-9 - _
  kKeyC = 1 << 5,         // parameter names: A-Z a-z 0-9 _ - . [ ]
  kLocalC = 1 << 6,       // email local part: A-Z a-z 0-9 . _ % + - '
  kSchemeC = 1 << 7,      // URL scheme: A-Z a-z 0-9 + . -
  kToken68C = 1 << 8,     // RFC 7235 token68: A-Z a-z 0-9 - . _ ~ + /
  kValueEndC = 1 << 9,    // ends an unquoted parameter value
  kSpaceC = 1 << 10,      // ASCII whitespace
  kAwsSecretC = 1 << 11,  // A-Z a-z 0-9 / + =
};

constexpr std::array<uint16_t, 256> MakeClasses() {
  std::array<uint16_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint16_t v = 0;
    const bool digit = c >= '0' && c <= '9';
    const bool upper = c >= 'A' && c <= 'Z';
    const bool lower = c >= 'a' && c <= 'z';
    const bool alnum = digit || upper || lower;
    if (digit) v |= kDigitC;
    if (upper) v |= kUpperC;
    if (lower) v |= kLowerC;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexC;
    if (alnum || c == '-' || c == '_') v |= kB64UrlC;
    if (alnum || c == '_' || c == '-' || c == '.' || c == '[' || c == ']') v |= kKeyC;
    if (alnum || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '\'') {
      v |= kLocalC;
    }
    if (alnum || c == '+' || c == '.' || c == '-') v |= kSchemeC;
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
      v |= kToken68C;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      v |= kSpaceC | kValueEndC;
    }
    if (c == '&' || c == ';' || c == ',' || c == '"' || c == '\'' || c == '#' || c == '}' ||
        c == ']' || c == ')' || c == '<' || c == '>' || c == '\\' || c == 0) {
      v |= kValueEndC;
    }
    if (alnum || c == '/' || c == '+' || c == '=') v |= kAwsSecretC;
    t[c] = v;
  }
  return t;
}
constexpr std::array<uint16_t, 256> kClass = MakeClasses();

inline uint16_t Cls(char c) { return kClass[static_cast<unsigned char>(c)]; }
inline bool IsDigit(char c) { return Cls(c) & kDigitC; }
inline bool IsUpper(char c) { return Cls(c) & kUpperC; }
inline bool IsLower(char c) { return Cls(c) & kLowerC; }
inline bool IsAlpha(char c) { return Cls(c) & (kUpperC | kLowerC); }
inline bool IsAlnum(char c) { return Cls(c) & (kDigitC | kUpperC | kLowerC); }
inline bool IsWord(char c) { return IsAlnum(c) || c == '_'; }
inline bool IsHex(char c) { return Cls(c) & kHexC; }
inline char Lower(char c) { return IsUpper(c) ? static_cast<char>(c + 32) : c; }
inline int HexValue(char c) {
  if (c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

inline int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

constexpr std::string_view kDetectorNames[kDetectorCount] = {
    "email",
    "phone",
    "ssn",
    "credit_card",
    "iban",
    "jwt",
    "bearer_token",
    "basic_auth",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "stripe_key",
    "slack_token",
    "private_key",
    "ipv4",
    "ipv6",
    "url_credentials",
    "sensitive_param",
    "sensitive_key",
    "client_address",
    "enduser",
};

// Lowercases `raw`, maps '-' to '_', and keeps the last segment after '.' or '[' (query and
// form names like user[password] or data.api-key). Keeps at most the last 96 bytes.
std::string_view NormalizeName(std::string_view raw, char (&buf)[96]) {
  while (!raw.empty() && (raw.back() == ']' || raw.back() == '"' || raw.back() == '\'')) {
    raw.remove_suffix(1);
  }
  for (size_t i = raw.size(); i > 0; --i) {
    if (raw[i - 1] == '.' || raw[i - 1] == '[') {
      raw.remove_prefix(i);
      break;
    }
  }
  if (raw.size() > sizeof(buf)) raw.remove_prefix(raw.size() - sizeof(buf));
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    buf[i] = c == '-' ? '_' : Lower(c);
  }
  return std::string_view(buf, raw.size());
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// "token" as the end of an '_'-separated part: access_token, csrftoken, x_auth_token, but not
// max_tokens or tokenizer.
bool HasTokenPart(std::string_view name) {
  size_t at = 0;
  while ((at = name.find("token", at)) != std::string_view::npos) {
    const size_t end = at + 5;
    if (end == name.size() || name[end] == '_') return true;
    at = end;
  }
  return false;
}

bool IsSensitiveNormalized(std::string_view n) {
  static constexpr std::string_view kExact[] = {
      "pwd",       "pass",          "passcode",
      "auth",      "authorization", "proxy_authorization",
      "cookie",    "set_cookie",    "session",
      "sessionid", "session_id",    "session_key",
      "csrf",      "xsrf",          "csrfmiddlewaretoken",
      "sig",       "otp",           "jwt",
      "api_sig",
  };
  for (std::string_view e : kExact) {
    if (n == e) return true;
  }
  static constexpr std::string_view kContains[] = {
      "password",   "passwd",      "passphrase", "secret",     "api_key",
      "apikey",     "private_key", "privatekey", "access_key", "accesskey",
      "credential", "signature",   "sessionid",
  };
  for (std::string_view c : kContains) {
    if (Contains(n, c)) return true;
  }
  return HasTokenPart(n);
}

enum class ParamKind : uint8_t { kNone, kGeneric, kHeader, kAwsSecret };

ParamKind ClassifyParamName(std::string_view raw) {
  char buf[96];
  const std::string_view n = NormalizeName(raw, buf);
  if (n.empty()) return ParamKind::kNone;
  if (n.size() >= 17 && n.substr(n.size() - 17) == "secret_access_key") {
    return ParamKind::kAwsSecret;
  }
  if (n == "authorization" || n == "proxy_authorization" || n == "cookie" || n == "set_cookie") {
    return ParamKind::kHeader;
  }
  return IsSensitiveNormalized(n) ? ParamKind::kGeneric : ParamKind::kNone;
}

// The digits of a number token: groups of digits joined by single separators.
struct NumToken {
  static constexpr int kMaxGroups = 12;
  static constexpr int kMaxDigits = 24;
  // Only the first ngroups / ndigits entries are written; nothing reads past them.
  bool plus = false;
  bool truncated = false;  // more groups followed than were kept
  char truncated_sep = 0;  // the separator before the first group not kept
  int ngroups = 0;
  int ndigits = 0;
  uint8_t len[kMaxGroups];
  char sep[kMaxGroups];  // separator before group g: ' ', '-', '.', or 0 (none)
  bool paren[kMaxGroups];
  uint32_t end[kMaxGroups];  // offset just past group g (past its ')'), from the token start
  char digits[kMaxDigits];
};

int ParseInt(const char* d, int len) {
  int v = 0;
  for (int i = 0; i < len; ++i) v = v * 10 + (d[i] - '0');
  return v;
}

bool NanpValid(const char* d) { return d[0] >= '2' && d[3] >= '2'; }

class Scan {
 public:
  Scan(std::string_view text, DetectorSet enabled, const std::array<bool, 256>& trigger,
       std::vector<DetectorMatch>* out)
      : s_(text.data()), n_(text.size()), en_(enabled), trigger_(trigger), out_(out) {
    numeric_ = en_.Has(Detector::kSsn) || en_.Has(Detector::kCreditCard) ||
               en_.Has(Detector::kPhone) || en_.Has(Detector::kIpv4);
  }

  void Run() {
    // The fast path: skip bytes that anchor nothing. Locals, so the compiler keeps the table and
    // bounds in registers, and four lookups per iteration.
    const bool* const trig = trigger_.data();
    const auto* const p = reinterpret_cast<const unsigned char*>(s_);
    const size_t n = n_;
    size_t i = 0;
    while (true) {
      while (i + 4 <= n && !(trig[p[i]] | trig[p[i + 1]] | trig[p[i + 2]] | trig[p[i + 3]])) i += 4;
      while (i < n && !trig[p[i]]) ++i;
      if (i >= n) break;
      i = Dispatch(i);
    }
  }

 private:
  struct RunCache {
    size_t begin = kNpos;
    size_t end = 0;
  };

  char At(size_t i) const { return i < n_ ? s_[i] : '\0'; }
  bool En(Detector d) const { return en_.Has(d); }
  bool StartsAt(size_t i, std::string_view lit) const {
    return i <= n_ && n_ - i >= lit.size() && std::memcmp(s_ + i, lit.data(), lit.size()) == 0;
  }
  bool StartsAtLower(size_t i, std::string_view lit) const {
    if (i > n_ || n_ - i < lit.size()) return false;
    for (size_t k = 0; k < lit.size(); ++k) {
      if (Lower(s_[i + k]) != lit[k]) return false;
    }
    return true;
  }
  bool WordStart(size_t i) const { return i == 0 || !IsWord(s_[i - 1]); }
  size_t Emit(size_t b, size_t e, Detector d) {
    out_->push_back({b, e, d});
    floor_ = e;
    return e;
  }

  size_t Dispatch(size_t i) {
    const char c = s_[i];
    if (IsDigit(c)) return OnDigit(i);
    switch (c) {
      case '+':
      case '(':
        return OnPhonePrefix(i);
      case '@':
        return OnAt(i);
      case ':':
        return OnColon(i);
      case '=':
        return OnEquals(i);
      case '-':
        return OnDash(i);
      case '_':
        return OnUnderscore(i);
      case 'A':
        return OnA(i);
      case 'B':
      case 'b':
        return OnB(i);
      case 'J':
        return OnJ(i);
      default:
        return i + 1;
    }
  }

  // ---- numbers: SSN, card, phone, IPv4 ----

  size_t SkipDigits(size_t i) const {
    while (i < n_ && IsDigit(s_[i])) ++i;
    return i;
  }

  bool NumberStart(size_t i) const {
    if (i == 0) return true;
    const char p = s_[i - 1];
    if (IsWord(p)) return false;
    const char pp = i >= 2 ? s_[i - 2] : '\0';
    if ((p == '-' || p == '.') && IsAlnum(pp)) return false;
    if ((p == ',' || p == ':' || p == '/') && IsDigit(pp)) return false;
    return true;
  }

  // The token ends cleanly: not glued to a word and not continued as a longer numeric form.
  // A dotted quad may be followed by :port or /prefix-length.
  bool CleanEnd(size_t e, bool dotted_quad) const {
    const char c = At(e);
    if (IsWord(c)) return false;
    if ((c == '.' || c == ',' || c == '-' || (!dotted_quad && (c == ':' || c == '/'))) &&
        IsDigit(At(e + 1))) {
      return false;
    }
    return true;
  }

  // One group at `g`: digits, or (digits). Returns its end or 0.
  size_t ParseGroup(size_t g, bool* paren, size_t* d0, size_t* dlen) const {
    size_t j = g;
    *paren = false;
    if (At(j) == '(') {
      *paren = true;
      ++j;
    }
    *d0 = j;
    while (j < n_ && IsDigit(s_[j]) && j - *d0 <= 20) ++j;
    *dlen = j - *d0;
    if (*dlen == 0 || *dlen > 20) return 0;
    if (*paren) {
      if (At(j) != ')' || *dlen > 4) return 0;
      ++j;
    }
    return j;
  }

  bool ParseNumber(size_t p, NumToken* t) const {
    size_t g = p;
    if (s_[p] == '+') {
      t->plus = true;
      ++g;
    }
    char sep = 0;
    while (true) {
      bool paren;
      size_t d0, dlen;
      const size_t ge = ParseGroup(g, &paren, &d0, &dlen);
      if (ge == 0) {
        if (t->ngroups == 0) return false;
        break;
      }
      // Parentheses only around the first group, or the second after +<country code>.
      if (paren && !(t->ngroups == 0 || (t->ngroups == 1 && t->plus))) break;
      if (t->ngroups == NumToken::kMaxGroups ||
          t->ndigits + static_cast<int>(dlen) > NumToken::kMaxDigits) {
        if (t->ngroups == 0) return false;
        t->truncated = true;
        t->truncated_sep = sep;
        break;
      }
      const int k = t->ngroups++;
      t->len[k] = static_cast<uint8_t>(dlen);
      t->sep[k] = sep;
      t->paren[k] = paren;
      t->end[k] = static_cast<uint32_t>(ge - p);
      std::memcpy(t->digits + t->ndigits, s_ + d0, dlen);
      t->ndigits += static_cast<int>(dlen);
      const char c = At(ge);
      if ((c == ' ' || c == '-' || c == '.') && (IsDigit(At(ge + 1)) || At(ge + 1) == '(')) {
        sep = c;
        g = ge + 1;
        continue;
      }
      if ((paren && IsDigit(c)) || (c == '(' && t->plus && t->ngroups == 1)) {
        sep = 0;
        g = ge;
        continue;
      }
      break;
    }
    return true;
  }

  size_t TryNumber(size_t p) {
    NumToken t;
    if (!ParseNumber(p, &t)) return 0;
    bool dotted_quad = t.ngroups == 4 && !t.plus;
    for (int k = 1; k < t.ngroups; ++k) dotted_quad = dotted_quad && t.sep[k] == '.';
    const bool full_ok = !t.truncated && CleanEnd(p + t.end[t.ngroups - 1], dotted_quad);
    for (int g = t.ngroups; g >= 1; --g) {
      // A prefix of the token ends only where a space separates the next group.
      if (g == t.ngroups) {
        if (t.truncated ? t.truncated_sep != ' ' : !full_ok) continue;
      } else if (t.sep[g] != ' ') {
        continue;
      }
      Detector d;
      if (Classify(t, g, p, &d)) return Emit(p, p + t.end[g - 1], d);
    }
    return 0;
  }

  bool Classify(const NumToken& t, int g, size_t p, Detector* d) const {
    int nd = 0;
    bool any_paren = false;
    for (int k = 0; k < g; ++k) {
      nd += t.len[k];
      any_paren = any_paren || t.paren[k];
    }
    const char s1 = g > 1 ? t.sep[1] : 0;
    bool uniform = true;
    for (int k = 2; k < g; ++k) uniform = uniform && t.sep[k] == s1;
    const char* dg = t.digits;

    if (!t.plus && !any_paren) {
      if (g == 4 && uniform && s1 == '.' && t.len[0] <= 3 && t.len[1] <= 3 && t.len[2] <= 3 &&
          t.len[3] <= 3) {
        // Dotted quad: an IPv4 address or nothing (never a phone).
        if (!En(Detector::kIpv4)) return false;
        int off = 0;
        for (int k = 0; k < 4; ++k) {
          if (t.len[k] > 1 && dg[off] == '0') return false;
          if (ParseInt(dg + off, t.len[k]) > 255) return false;
          off += t.len[k];
        }
        if (p >= 2 && s_[p - 1] == '/' && IsAlnum(s_[p - 2])) return false;  // Chrome/120.0.0.0
        const size_t e = p + t.end[3];
        if ((At(e) == '-' || At(e) == '.') && IsAlnum(At(e + 1))) return false;  // 1.2.3.4-beta
        *d = Detector::kIpv4;
        return true;
      }
      if (g == 3 && t.len[0] == 3 && t.len[1] == 2 && t.len[2] == 4 && uniform &&
          (s1 == '-' || s1 == ' ')) {
        if (!En(Detector::kSsn)) return false;
        if (!ValidSsnParts(ParseInt(dg, 3), ParseInt(dg + 3, 2), ParseInt(dg + 5, 4))) {
          return false;
        }
        *d = Detector::kSsn;
        return true;
      }
      if (En(Detector::kCreditCard) && nd >= 13 && nd <= 19 &&
          (g == 1 || (uniform && (s1 == ' ' || s1 == '-')))) {
        bool shape = g == 1;
        if (!shape && g == 3 && t.len[0] == 4 && t.len[1] == 6 &&
            (t.len[2] == 5 || t.len[2] == 4)) {
          shape = true;  // Amex 4-6-5, Diners 4-6-4
        }
        if (!shape && g >= 2) {
          shape = t.len[g - 1] >= 1 && t.len[g - 1] <= 4;
          for (int k = 0; k + 1 < g; ++k) shape = shape && t.len[k] == 4;
        }
        const std::string_view digits(dg, nd);
        if (shape && PlausibleCardPrefix(digits) && LuhnValid(digits)) {
          *d = Detector::kCreditCard;
          return true;
        }
      }
    }
    if (!En(Detector::kPhone)) return false;
    if (t.plus) {
      if (nd < 8 || nd > 15 || t.paren[0]) return false;
      if (g > 1 && t.len[0] > 3) return false;  // country codes have 1-3 digits
      if (g == 3 && t.len[0] == 4 && t.len[1] == 2 && t.len[2] == 2) return false;  // +2024-01-15
      *d = Detector::kPhone;
      return true;
    }
    if (t.paren[0]) {
      if (g == 3 && t.len[0] == 3 && t.len[1] == 3 && t.len[2] == 4 &&
          (t.sep[1] == ' ' || t.sep[1] == 0) && t.sep[2] != 0 && NanpValid(dg)) {
        *d = Detector::kPhone;  // (415) 555-2671
        return true;
      }
      if (TrunkShape(t, g, nd) && dg[0] == '0' && dg[1] != '0') {
        *d = Detector::kPhone;  // (020) 7946 0958
        return true;
      }
      return false;
    }
    if (any_paren) return false;
    if (uniform && (s1 == '-' || s1 == '.' || s1 == ' ')) {
      if (g == 3 && t.len[0] == 3 && t.len[1] == 3 && t.len[2] == 4 && NanpValid(dg)) {
        *d = Detector::kPhone;  // 415-555-2671
        return true;
      }
      if (g == 4 && t.len[0] == 1 && dg[0] == '1' && t.len[1] == 3 && t.len[2] == 3 &&
          t.len[3] == 4 && NanpValid(dg + 1)) {
        *d = Detector::kPhone;  // 1-415-555-2671
        return true;
      }
    }
    if (TrunkShape(t, g, nd) && dg[0] == '0' && dg[1] != '0') {
      *d = Detector::kPhone;  // 020 7946 0958
      return true;
    }
    return false;
  }

  // National number with a trunk 0: 9-12 digits, first group 2-5 digits, later groups >= 2
  // digits, separated by spaces or dashes (or all dots in 4+ groups, 01.23.45.67.89).
  static bool TrunkShape(const NumToken& t, int g, int nd) {
    if (nd < 9 || nd > 12 || g < 2 || t.len[0] < 2 || t.len[0] > 5) return false;
    bool all_dots = true, space_dash = true;
    for (int k = 1; k < g; ++k) {
      if (t.len[k] < 2) return false;
      all_dots = all_dots && t.sep[k] == '.';
      space_dash =
          space_dash && (t.sep[k] == ' ' || t.sep[k] == '-' || (t.sep[k] == 0 && t.paren[k - 1]));
    }
    return space_dash || (all_dots && g >= 4);
  }

  size_t OnDigit(size_t i) {
    if (En(Detector::kIban) && i >= floor_ + 2 && IsUpper(s_[i - 2]) && IsUpper(s_[i - 1]) &&
        WordStart(i - 2)) {
      const size_t e = TryIban(i - 2);
      if (e != 0) return Emit(i - 2, e, Detector::kIban);
    }
    if (numeric_ && NumberStart(i)) {
      const size_t e = TryNumber(i);
      if (e != 0) return e;
    }
    return SkipDigits(i);
  }

  size_t OnPhonePrefix(size_t i) {
    if (!En(Detector::kPhone) || !IsDigit(At(i + 1))) return i + 1;
    if (i > 0 && (IsWord(s_[i - 1]) || s_[i - 1] == '+')) return i + 1;
    const size_t e = TryNumber(i);
    return e != 0 ? e : i + 1;
  }

  // ---- IBAN ----

  static bool IbanChar(char c) { return IsUpper(c) || IsDigit(c); }

  size_t TryIban(size_t b) const {
    if (!IsDigit(At(b + 2)) || !IsDigit(At(b + 3))) return 0;
    const int check = (At(b + 2) - '0') * 10 + (At(b + 3) - '0');
    if (check < 2 || check > 98) return 0;
    char buf[34];
    size_t run = 0;
    while (run < 35 && IbanChar(At(b + run))) ++run;
    if (run >= 15) {
      // Contiguous form.
      if (run > 34 || IsWord(At(b + run))) return 0;
      return IbanChecksumValid(std::string_view(s_ + b, run)) ? b + run : 0;
    }
    if (run != 4 || At(b + 4) != ' ') return 0;
    // Grouped form: GB82 WEST 1234 5698 7654 32. Try candidate ends from the longest.
    std::memcpy(buf, s_ + b, 4);
    size_t len = 4;
    size_t ends[9];
    size_t lens[9];
    int ncand = 0;
    size_t i = b + 4;
    while (At(i) == ' ' && IbanChar(At(i + 1)) && len < 34) {
      size_t k = i + 1;
      size_t glen = 0;
      while (glen < 4 && IbanChar(At(k)) && len + glen < 34) {
        buf[len + glen] = s_[k];
        ++glen;
        ++k;
      }
      if (IsWord(At(k))) break;  // a group longer than four, or glued to a word
      len += glen;
      i = k;
      if (len >= 15 && ncand < 9) {
        ends[ncand] = i;
        lens[ncand] = len;
        ++ncand;
      }
      if (glen < 4) break;  // only the last group may be short
    }
    for (int c = ncand - 1; c >= 0; --c) {
      if (IbanChecksumValid(std::string_view(buf, lens[c]))) return ends[c];
    }
    return 0;
  }

  // ---- email ----

  size_t OnAt(size_t i) {
    if (!En(Detector::kEmail)) return i + 1;
    size_t j = i;
    while (j > floor_ && i - j < 64 && (Cls(s_[j - 1]) & kLocalC)) --j;
    if (j > floor_ && (Cls(s_[j - 1]) & kLocalC)) return i + 1;  // local part over 64 bytes
    while (j < i && (s_[j] == '.' || s_[j] == '\'')) ++j;
    if (j == i || s_[i - 1] == '.') return i + 1;
    const size_t e = ParseDomain(i + 1);
    if (e == 0) return i + 1;
    return Emit(j, e, Detector::kEmail);
  }

  size_t ParseDomain(size_t p) const {
    size_t i = p;
    int labels = 0;
    size_t last_begin = p, last_end = p;
    while (IsAlnum(At(i))) {
      const size_t lb = i;
      while ((IsAlnum(At(i)) || At(i) == '-') && i - p < 253) ++i;
      if (s_[i - 1] == '-') return 0;
      ++labels;
      last_begin = lb;
      last_end = i;
      if (At(i) == '.' && IsAlnum(At(i + 1))) {
        ++i;
        continue;
      }
      break;
    }
    if (labels < 2 || IsWord(At(last_end))) return 0;
    const size_t tld_len = last_end - last_begin;
    if (tld_len < 2 || tld_len > 63) return 0;
    for (size_t k = last_begin; k < last_end; ++k) {
      if (!IsAlpha(s_[k])) return 0;
    }
    static constexpr std::string_view kImageExtensions[] = {"png", "jpg",  "jpeg", "gif",
                                                            "svg", "webp", "ico",  "bmp"};
    char tld[8] = {};
    if (tld_len <= 4) {
      for (size_t k = 0; k < tld_len; ++k) tld[k] = Lower(s_[last_begin + k]);
      for (std::string_view ext : kImageExtensions) {
        if (ext == std::string_view(tld, tld_len)) return 0;
      }
    }
    return last_end;
  }

  // ---- ':' : URL credentials, key: value, IPv6 ----

  size_t OnColon(size_t i) {
    if (At(i + 1) == '/' && At(i + 2) == '/') {
      return En(Detector::kUrlCredentials) ? TryUrlCredentials(i) : i + 3;
    }
    if (En(Detector::kSensitiveParam) || En(Detector::kAwsSecretKey)) {
      const size_t r = TryKeyValue(i);
      if (r != 0) return r;
    }
    if (En(Detector::kIpv6)) {
      const size_t r = TryIpv6(i);
      if (r != 0) return r;
    }
    return i + 1;
  }

  size_t TryUrlCredentials(size_t colon) {
    size_t j = colon;
    while (j > floor_ && colon - j < 32 && (Cls(s_[j - 1]) & kSchemeC)) --j;
    while (j < colon && !IsAlpha(s_[j])) ++j;
    const size_t a = colon + 3;
    if (j == colon) return a;
    size_t k = a, at = kNpos;
    while (k < n_ && k - a < 512) {
      const char c = s_[k];
      if (c == '/' || c == '?' || c == '#' || (Cls(c) & kSpaceC) || c == '"' || c == '\'' ||
          c == '<' || c == '>' || c == '\\') {
        break;
      }
      if (c == '@') at = k;
      ++k;
    }
    if (at == kNpos) return a;
    const void* colon2 = std::memchr(s_ + a, ':', at - a);
    if (colon2 == nullptr) return a;  // user name only: left to the other detectors
    const size_t pw = static_cast<const char*>(colon2) - s_ + 1;
    if (pw == at) return a;
    if (IsMaskToken(pw, at)) {  // already redacted: leave it, stay idempotent
      floor_ = at;  // as after a match: the user info is no e-mail's local part
      return at;
    }
    return Emit(pw, at, Detector::kUrlCredentials);
  }

  size_t OnEquals(size_t i) {
    if (En(Detector::kSensitiveParam) || En(Detector::kAwsSecretKey)) {
      const size_t r = TryKeyValue(i);
      if (r != 0) return r;
    }
    return i + 1;
  }

  // "[REDACTED]" or "pseudo:<hex>", as masking.h writes them, or "REDACTED", the marker the
  // HTTP semantic conventions ask integrations to write into url.full and url.query.
  bool IsMaskToken(size_t b, size_t e) const {
    const std::string_view v(s_ + b, e - b);
    if (v == "[REDACTED]" || v == "REDACTED") return true;
    if (v.size() < 15 || v.substr(0, 7) != "pseudo:") return false;
    for (size_t k = 7; k < v.size(); ++k) {
      if (!IsHex(v[k]) || IsUpper(v[k])) return false;
    }
    return true;
  }

  size_t FindQuote(size_t i, char q) const {
    while (i < n_) {
      if (s_[i] == '\\') {
        i += 2;
        continue;
      }
      if (s_[i] == q) return i;
      ++i;
    }
    return n_;
  }

  size_t FindEscapedQuote(size_t i, char q) const {
    while (i < n_) {
      if (s_[i] == '\\') {
        if (At(i + 1) == q) return i;
        i += 2;
        continue;
      }
      ++i;
    }
    return n_;
  }

  // key=value and key: value where the key names a secret. Returns where scanning resumes, or
  // 0 when this is not such a pair.
  size_t TryKeyValue(size_t i) {
    const char sep = s_[i];
    if (sep == '=') {
      if (At(i + 1) == '=') return 0;
      if (i > 0 && (s_[i - 1] == '!' || s_[i - 1] == '<' || s_[i - 1] == '>' || s_[i - 1] == '=')) {
        return 0;
      }
    }
    size_t j = i;
    int blanks = 0;
    while (j > floor_ && blanks < 3 && (s_[j - 1] == ' ' || s_[j - 1] == '\t')) {
      --j;
      ++blanks;
    }
    char quote = 0;
    bool escaped = false;  // \"key\": JSON inside a JSON string
    if (j > floor_ && (s_[j - 1] == '"' || s_[j - 1] == '\'')) {
      quote = s_[j - 1];
      --j;
      if (j > floor_ && s_[j - 1] == '\\') {
        escaped = true;
        --j;
      }
    }
    const size_t key_end = j;
    while (j > floor_ && key_end - j < 64 && (Cls(s_[j - 1]) & kKeyC)) --j;
    if (j == key_end) return 0;
    if (quote != 0) {
      if (j <= floor_ || s_[j - 1] != quote) return 0;
      if (escaped && (j < floor_ + 2 || s_[j - 2] != '\\')) return 0;
    } else if (j > floor_ && (Cls(s_[j - 1]) & kKeyC)) {
      return 0;  // longer than any parameter name
    }
    const ParamKind kind = ClassifyParamName(std::string_view(s_ + j, key_end - j));
    if (kind == ParamKind::kNone) return 0;

    size_t v = i + 1;
    for (int b = 0; b < 3 && (At(v) == ' ' || At(v) == '\t'); ++b) ++v;
    size_t vb, ve, resume;
    const char c = At(v);
    if (v < n_ && (c == '"' || c == '\'')) {
      vb = v + 1;
      ve = FindQuote(vb, c);
      resume = ve < n_ ? ve + 1 : n_;
    } else if (c == '\\' && (At(v + 1) == '"' || At(v + 1) == '\'')) {
      vb = v + 2;  // JSON inside a JSON string: \"password\": \"x\"
      ve = FindEscapedQuote(vb, At(v + 1));
      resume = ve < n_ ? ve + 2 : n_;
    } else {
      if (sep == ':' && (c == '{' || c == '[')) return 0;
      vb = ve = v;
      if (kind == ParamKind::kHeader && sep == ':') {
        // Authorization: Bearer abc, Cookie: a=b; c=d run to the end of the line.
        while (ve < n_ && s_[ve] != '\n' && s_[ve] != '\r') ++ve;
        while (ve > vb && (s_[ve - 1] == ' ' || s_[ve - 1] == '\t')) --ve;
      } else if (StartsAt(vb, "[REDACTED]")) {
        ve = vb + 10;
      } else {
        while (ve < n_ && !(Cls(s_[ve]) & kValueEndC)) ++ve;
      }
      resume = ve;
      const std::string_view literal(s_ + vb, ve - vb);
      if (sep == ':' && (literal == "null" || literal == "true" || literal == "false")) return 0;
    }
    if (ve <= vb) return 0;
    if (IsMaskToken(vb, ve)) return resume;  // already redacted: leave it, stay idempotent
    Detector d = Detector::kSensitiveParam;
    if (kind == ParamKind::kAwsSecret && En(Detector::kAwsSecretKey) && ve - vb == 40) {
      bool shape = true;
      for (size_t k = vb; k < ve; ++k) shape = shape && (Cls(s_[k]) & kAwsSecretC);
      if (shape) d = Detector::kAwsSecretKey;
    }
    if (d == Detector::kSensitiveParam && !En(Detector::kSensitiveParam)) return 0;
    Emit(vb, ve, d);
    return resume;
  }

  size_t TryIpv6(size_t colon) {
    size_t j = colon;
    while (j > floor_ && colon - j < 4 && IsHex(s_[j - 1])) --j;
    if (j > 0) {
      const char p = s_[j - 1];
      if (IsWord(p) || p == ':' || p == '.') return 0;
    }
    if (j == colon && At(colon + 1) != ':') return 0;
    const size_t e = ParseIpv6Span(j, nullptr);
    if (e == 0) return 0;
    if (IsWord(At(e)) || (At(e) == '.' && IsAlnum(At(e + 1)))) return 0;
    return Emit(j, e, Detector::kIpv6);
  }

 public:
  // Parses an IPv6 address at p. Returns its end or 0. Fills 8 groups when asked.
  size_t ParseIpv6Span(size_t p, std::array<uint16_t, 8>* groups) const {
    uint16_t head[8], tail[8];
    int nh = 0, nt = 0;
    bool dbl = false, digit = false;
    size_t i = p;
    if (At(i) == ':') {
      if (At(i + 1) != ':') return 0;
      dbl = true;
      i += 2;
    }
    while (true) {
      const size_t g0 = i;
      uint32_t v = 0;
      while (IsHex(At(i)) && i - g0 < 5) {
        v = v * 16 + static_cast<uint32_t>(HexValue(s_[i]));
        ++i;
      }
      const size_t gl = i - g0;
      if (gl == 0) break;
      if (gl > 4) return 0;
      if (At(i) == '.') {
        uint32_t v4 = 0;
        const size_t e4 = ParseIpv4Dotted(g0, &v4);
        if (e4 == 0 || nh + nt + 2 > (dbl ? 7 : 8)) return 0;
        uint16_t* dst = dbl ? tail : head;
        int& cnt = dbl ? nt : nh;
        dst[cnt++] = static_cast<uint16_t>(v4 >> 16);
        dst[cnt++] = static_cast<uint16_t>(v4);
        digit = true;
        i = e4;
        break;
      }
      for (size_t k = g0; k < i; ++k) digit = digit || IsDigit(s_[k]);
      if (nh + nt + 1 > 8) return 0;
      (dbl ? tail[nt++] : head[nh++]) = static_cast<uint16_t>(v);
      if (At(i) == ':') {
        if (At(i + 1) == ':') {
          if (dbl) return 0;
          dbl = true;
          i += 2;
          continue;
        }
        if (IsHex(At(i + 1))) {
          ++i;
          continue;
        }
      }
      break;
    }
    const int total = nh + nt;
    if ((dbl ? total > 7 : total != 8) || !digit) return 0;
    if (groups != nullptr) {
      int k = 0;
      for (int h = 0; h < nh; ++h) (*groups)[k++] = head[h];
      for (int z = 0; z < 8 - total; ++z) (*groups)[k++] = 0;
      for (int t = 0; t < nt; ++t) (*groups)[k++] = tail[t];
    }
    return i;
  }

 private:
  size_t ParseIpv4Dotted(size_t p, uint32_t* value) const {
    size_t i = p;
    uint32_t v = 0;
    for (int octet = 0; octet < 4; ++octet) {
      if (octet > 0) {
        if (At(i) != '.') return 0;
        ++i;
      }
      const size_t d0 = i;
      int x = 0;
      while (IsDigit(At(i)) && i - d0 < 4) x = x * 10 + (s_[i++] - '0');
      const size_t len = i - d0;
      if (len == 0 || len > 3 || x > 255 || (len > 1 && s_[d0] == '0')) return 0;
      v = (v << 8) | static_cast<uint32_t>(x);
    }
    *value = v;
    return i;
  }

  // ---- '-' : PEM, Slack ----

  size_t OnDash(size_t i) {
    if (En(Detector::kPrivateKey) && At(i + 1) == '-') {
      const size_t r = TryPem(i);
      if (r != 0) return r;
    }
    if (En(Detector::kSlackToken) && i >= floor_ + 4) {
      const size_t r = TrySlack(i);
      if (r != 0) return r;
    }
    return i + 1;
  }

  size_t FindPemEnd(size_t from) {
    if (pem_end_missing_from_ != kNpos && from >= pem_end_missing_from_) return kNpos;
    const size_t at = std::string_view(s_, n_).find("-----END ", from);
    if (at == kNpos) pem_end_missing_from_ = from;
    return at;
  }

  size_t TryPem(size_t i) {
    if (!StartsAt(i, "-----BEGIN ")) return 0;
    const size_t lb = i + 11;
    size_t k = lb;
    while (k < n_ && k - lb < 64 && s_[k] != '-' && s_[k] != '\n') ++k;
    if (!StartsAt(k, "-----")) return 0;
    if (std::string_view(s_ + lb, k - lb).find("PRIVATE KEY") == std::string_view::npos) return 0;
    const size_t body = k + 5;
    const size_t end_marker = FindPemEnd(body);
    size_t e;
    if (end_marker != kNpos) {
      e = end_marker + 9;
      // The label is ASCII; stop at anything else so a match never ends inside a character.
      while (e < n_ && e - end_marker < 80 && s_[e] != '\n' &&
             static_cast<unsigned char>(s_[e]) < 0x80 && !StartsAt(e, "-----")) {
        ++e;
      }
      if (StartsAt(e, "-----")) e += 5;
    } else {
      // No END line (a truncated value): redact the key body that is there.
      e = body;
      while (e < n_ && !StartsAt(e, "-----")) {
        const char c = s_[e];
        if (!(IsAlnum(c) || c == '+' || c == '/' || c == '=' || (Cls(c) & kSpaceC) || c == ':' ||
              c == ',' || c == '-' || c == '\\')) {
          break;
        }
        ++e;
      }
    }
    return Emit(i, e, Detector::kPrivateKey);
  }

  size_t TrySlack(size_t i) {
    static constexpr std::string_view kPrefixes[] = {"xoxb", "xoxp", "xoxa", "xoxr",
                                                     "xoxs", "xoxe", "xapp"};
    const std::string_view prefix(s_ + i - 4, 4);
    bool known = false;
    for (std::string_view p : kPrefixes) known = known || p == prefix;
    if (!known || !WordStart(i - 4)) return 0;
    size_t e = i + 1;
    while (IsAlnum(At(e)) || At(e) == '-') ++e;
    while (e > i + 1 && s_[e - 1] == '-') --e;
    if (e - (i + 1) < 10 || IsWord(At(e))) return 0;
    return Emit(i - 4, e, Detector::kSlackToken);
  }

  // ---- '_' : GitHub, Stripe ----

  size_t AlnumRunEnd(size_t i, bool underscore) const {
    while (IsAlnum(At(i)) || (underscore && At(i) == '_')) ++i;
    return i;
  }

  size_t OnUnderscore(size_t i) {
    if (En(Detector::kGithubToken)) {
      if (i >= floor_ + 3 && s_[i - 3] == 'g' && s_[i - 2] == 'h' &&
          (s_[i - 1] == 'p' || s_[i - 1] == 'o' || s_[i - 1] == 'u' || s_[i - 1] == 's' ||
           s_[i - 1] == 'r') &&
          WordStart(i - 3)) {
        const size_t e = AlnumRunEnd(i + 1, false);
        if (e - (i + 1) >= 20 && !IsWord(At(e))) return Emit(i - 3, e, Detector::kGithubToken);
      }
      if (i >= floor_ + 6 && StartsAt(i - 6, "github") && WordStart(i - 6) &&
          StartsAt(i + 1, "pat_")) {
        const size_t e = AlnumRunEnd(i + 5, true);
        if (e - (i + 5) >= 20) return Emit(i - 6, e, Detector::kGithubToken);
      }
    }
    if (En(Detector::kStripeKey) && i >= floor_ + 2 && s_[i - 1] == 'k' &&
        (s_[i - 2] == 's' || s_[i - 2] == 'r' || s_[i - 2] == 'p') && WordStart(i - 2)) {
      size_t body = 0;
      if (StartsAt(i + 1, "live_")) {
        body = i + 6;
      } else if (StartsAt(i + 1, "test_") && s_[i - 2] != 'p') {
        body = i + 6;  // publishable test keys (pk_test_) are public by design
      }
      if (body != 0) {
        const size_t e = AlnumRunEnd(body, false);
        if (e - body >= 10 && !IsWord(At(e))) return Emit(i - 2, e, Detector::kStripeKey);
      }
    }
    return i + 1;
  }

  // ---- letters: AWS access key id, Bearer/Basic, JWT ----

  size_t OnA(size_t i) {
    if (!En(Detector::kAwsAccessKey) || !WordStart(i)) return i + 1;
    if (!((At(i + 1) == 'K' || At(i + 1) == 'S') && At(i + 2) == 'I' && At(i + 3) == 'A')) {
      return i + 1;
    }
    for (size_t k = 4; k < 20; ++k) {
      const char c = At(i + k);
      if (!IsUpper(c) && !IsDigit(c)) return i + 1;
    }
    if (IsWord(At(i + 20))) return i + 1;
    return Emit(i, i + 20, Detector::kAwsAccessKey);
  }

  size_t SkipAuthBlanks(size_t p) const {
    size_t t = p;
    while ((At(t) == ' ' || At(t) == '\t') && t - p < 4) ++t;
    return t == p ? 0 : t;
  }

  size_t OnB(size_t i) {
    if (!WordStart(i)) return i + 1;
    if (En(Detector::kBearerToken) && StartsAtLower(i, "bearer")) {
      const size_t t = SkipAuthBlanks(i + 6);
      if (t != 0) {
        size_t e = t;
        while (Cls(At(e)) & kToken68C) ++e;
        while (e > t && s_[e - 1] == '.') --e;  // a sentence's full stop
        while (At(e) == '=') ++e;
        if (e - t >= 8) {
          bool digit = false, symbol = false, lower = false, inner_upper = false;
          for (size_t k = t; k < e; ++k) {
            const char c = s_[k];
            digit = digit || IsDigit(c);
            symbol = symbol || !IsAlnum(c);
            lower = lower || IsLower(c);
            inner_upper = inner_upper || (k > t && IsUpper(c));
          }
          if (digit || symbol || (lower && inner_upper)) return Emit(t, e, Detector::kBearerToken);
        }
      }
    }
    if (En(Detector::kBasicAuth) && StartsAtLower(i, "basic")) {
      const size_t t = SkipAuthBlanks(i + 5);
      if (t != 0) {
        size_t e = t;
        while (IsAlnum(At(e)) || At(e) == '+' || At(e) == '/') ++e;
        const size_t data_end = e;
        for (int pad = 0; pad < 2 && At(e) == '='; ++pad) ++e;
        if (data_end - t >= 4 && !IsWord(At(e))) {
          // user:password, base64: look for the ':' in the decoded bytes.
          uint32_t acc = 0;
          int bits = 0;
          bool colon = false;
          for (size_t k = t; k < data_end && !colon; ++k) {
            acc = (acc << 6) | static_cast<uint32_t>(Base64Value(s_[k]));
            bits += 6;
            if (bits >= 8) {
              bits -= 8;
              colon = ((acc >> bits) & 0xFF) == ':';
            }
          }
          if (colon) return Emit(t, e, Detector::kBasicAuth);
        }
      }
    }
    return i + 1;
  }

  // End of the base64url run starting at p. Anchors inside one run share its end, so a value
  // made of eyJ-eyJ-eyJ... costs linear time.
  size_t RunEnd(int slot, size_t p) {
    RunCache& c = run_cache_[slot];
    if (c.begin != kNpos && p >= c.begin && p <= c.end) return c.end;
    size_t e = p;
    while (e < n_ && (Cls(s_[e]) & kB64UrlC)) ++e;
    c.begin = p;
    c.end = e;
    return e;
  }

  // Whether a base64url header segment decodes to something that ends in '}'.
  bool HeaderEndsWithBrace(size_t b, size_t e) const {
    const size_t len = e - b;
    if (len % 4 == 1) return false;
    const size_t last = b + (len - 1) / 4 * 4;
    uint32_t acc = 0;
    int bits = 0;
    int last_byte = -1;
    for (size_t k = last; k < e; ++k) {
      acc = (acc << 6) | static_cast<uint32_t>(Base64Value(s_[k]));
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        last_byte = static_cast<int>((acc >> bits) & 0xFF);
      }
    }
    return last_byte == '}';
  }

  size_t OnJ(size_t i) {
    if (!En(Detector::kJwt) || i < floor_ + 2 || s_[i - 2] != 'e' || s_[i - 1] != 'y' ||
        !WordStart(i - 2) || (i > 2 && s_[i - 3] == '.')) {
      return i + 1;
    }
    const size_t b = i - 2;
    size_t seg_begin[5], seg_end[5];
    int nseg = 0;
    size_t pos = b;
    while (true) {
      const size_t e = RunEnd(nseg, pos);
      seg_begin[nseg] = pos;
      seg_end[nseg] = e;
      ++nseg;
      if (At(e) == '.' && nseg < 5) {
        pos = e + 1;
        continue;
      }
      if (At(e) == '.') return i + 1;  // six or more dotted parts: not a JWS/JWE
      break;
    }
    if (nseg != 3 && nseg != 5) return i + 1;
    if (seg_end[0] - seg_begin[0] < 10) return i + 1;
    if (nseg == 3 && seg_end[1] == seg_begin[1]) return i + 1;
    if (!HeaderEndsWithBrace(seg_begin[0], seg_end[0])) return i + 1;
    size_t e = seg_end[nseg - 1];
    while (At(e) == '=') ++e;
    return Emit(b, e, Detector::kJwt);
  }

  const char* s_;
  size_t n_;
  DetectorSet en_;
  const std::array<bool, 256>& trigger_;
  std::vector<DetectorMatch>* out_;
  bool numeric_ = false;
  size_t floor_ = 0;  // end of the last match: look-behind stops here
  size_t pem_end_missing_from_ = kNpos;
  RunCache run_cache_[5];
};

}  // namespace

std::string_view DetectorName(Detector detector) noexcept {
  const size_t i = static_cast<size_t>(detector);
  return i < kDetectorCount ? kDetectorNames[i] : std::string_view("unknown");
}

std::optional<Detector> DetectorFromName(std::string_view name) noexcept {
  for (size_t i = 0; i < kDetectorCount; ++i) {
    if (kDetectorNames[i] == name) return static_cast<Detector>(i);
  }
  return std::nullopt;
}

bool LuhnValid(std::string_view digits) noexcept {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i > 0; --i) {
    const char c = digits[i - 1];
    if (c < '0' || c > '9') return false;
    int d = c - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool PlausibleCardPrefix(std::string_view d) noexcept {
  const size_t len = d.size();
  if (len < 13 || len > 19) return false;
  const int p2 = (d[0] - '0') * 10 + (d[1] - '0');
  const int p3 = p2 * 10 + (d[2] - '0');
  const int p4 = p3 * 10 + (d[3] - '0');
  switch (d[0]) {
    case '4':  // Visa
      return len == 13 || len == 16 || len == 19;
    case '2':  // Mastercard 2-series
      return p4 >= 2221 && p4 <= 2720 && len == 16;
    case '5':
      if (p2 >= 51 && p2 <= 55) return len == 16;  // Mastercard
      return p2 == 50 || (p2 >= 56 && p2 <= 58);   // Maestro
    case '3':
      if (p2 == 34 || p2 == 37) return len == 15;                                          // Amex
      if (p2 == 35) return p4 >= 3528 && p4 <= 3589 && len >= 16;                          // JCB
      if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39) return len >= 14;  // Diners
      return false;
    case '6':  // Discover 6011/644-649/65, UnionPay 62, Maestro 63/67
      return (p4 == 6011 || p2 == 62 || p2 == 63 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
              p2 == 67) &&
             len >= 16;
    default:
      return false;
  }
}

bool IbanChecksumValid(std::string_view iban) noexcept {
  const size_t n = iban.size();
  if (n < 15 || n > 34) return false;
  if (!IsUpper(iban[0]) || !IsUpper(iban[1]) || !IsDigit(iban[2]) || !IsDigit(iban[3])) {
    return false;
  }
  uint32_t rem = 0;
  for (size_t k = 0; k < n; ++k) {
    const char c = iban[(k + 4) % n];
    if (IsDigit(c)) {
      rem = (rem * 10 + static_cast<uint32_t>(c - '0')) % 97;
    } else if (IsUpper(c)) {
      rem = (rem * 100 + static_cast<uint32_t>(c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool ValidSsnParts(int area, int group, int serial) noexcept {
  return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

bool ParseIpv6Address(std::string_view text, std::array<uint16_t, 8>* groups) noexcept {
  static const std::array<bool, 256> kNoTrigger{};
  std::vector<DetectorMatch>* none = nullptr;
  Scan scan(text, DetectorSet(), kNoTrigger, none);
  return !text.empty() && scan.ParseIpv6Span(0, groups) == text.size();
}

bool IsSensitiveParamName(std::string_view name) noexcept {
  char buf[96];
  return IsSensitiveNormalized(NormalizeName(name, buf));
}

PiiScanner::PiiScanner(DetectorSet enabled) noexcept : enabled_(enabled) {
  auto mark = [this](std::string_view bytes) {
    for (char c : bytes) trigger_[static_cast<unsigned char>(c)] = true;
  };
  using D = Detector;
  if (enabled.Has(D::kSsn) || enabled.Has(D::kCreditCard) || enabled.Has(D::kPhone) ||
      enabled.Has(D::kIpv4) || enabled.Has(D::kIban)) {
    mark("0123456789");
  }
  if (enabled.Has(D::kPhone)) mark("+(");
  if (enabled.Has(D::kEmail)) mark("@");
  if (enabled.Has(D::kUrlCredentials) || enabled.Has(D::kSensitiveParam) ||
      enabled.Has(D::kAwsSecretKey) || enabled.Has(D::kIpv6)) {
    mark(":");
  }
  if (enabled.Has(D::kSensitiveParam) || enabled.Has(D::kAwsSecretKey)) mark("=");
  if (enabled.Has(D::kPrivateKey) || enabled.Has(D::kSlackToken)) mark("-");
  if (enabled.Has(D::kGithubToken) || enabled.Has(D::kStripeKey)) mark("_");
  if (enabled.Has(D::kAwsAccessKey)) mark("A");
  if (enabled.Has(D::kBearerToken) || enabled.Has(D::kBasicAuth)) mark("Bb");
  if (enabled.Has(D::kJwt)) mark("J");
}

void PiiScanner::Scan(std::string_view text, std::vector<DetectorMatch>* out) const {
  if (!enabled_.AnyValueDetector()) return;
  ::djtrace::pii::Scan scan(text, enabled_, trigger_, out);
  scan.Run();
}

bool PiiScanner::MayMatch(std::string_view text) const noexcept {
  for (char c : text) {
    if (trigger_[static_cast<unsigned char>(c)]) return true;
  }
  return false;
}

}  // namespace djtrace::pii
