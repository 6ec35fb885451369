// Redaction of URLs, query strings and free text; see url.h.
//
// This is the former Python implementation (djtrace.integrations.redaction) moved here, and it
// keeps that behaviour byte for byte: the Python tests compare the two on generated inputs
// (tests/integrations/test_redaction_native.py). The Python regular expressions are the
// specification of the text scanners below:
//
//   URL in text:  [A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+
//   pair in text: ([A-Za-z0-9_.\-]+)([=:])([^\s&,;:='"]+)
//
// applied as re.sub applies them (leftmost, non-overlapping matches; URLs first, then the pairs
// over the result). The input is UTF-8 and is scanned byte by byte: every character class above
// is ASCII except `\s`, which in a Python str pattern is Unicode whitespace (str.isspace); see
// WhitespaceAt. Invalid UTF-8 is not rejected: its bytes are neither whitespace nor ASCII, so
// they are kept and scanned like any other non-ASCII character.
#include "http/url.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace::http {
namespace {

constexpr std::string_view kRedactedUserinfo = "REDACTED:REDACTED";

// Keys redacted whatever they are called around these words (compared normalised, see
// MatchAt).
constexpr std::string_view kSensitiveParts[] = {
    "password", "passwd",     "passphrase", "secret",      "token",    "api_key",
    "apikey",   "access_key", "accesskey",  "private_key", "authoriz", "session",
    "csrf",     "xsrf",       "signature",  "credential",  "cookie",   "jwt",
};
// Short keys that are sensitive only as a whole (a substring test would catch "design").
constexpr std::string_view kSensitiveKeys[] = {
    "sig",
    "pwd",
    "pass",
    "key",
    "auth",
    "otp",
    "pin",
    "x_goog_signature",
    "awsaccesskeyid",
    "code_verifier",
};
constexpr std::string_view kSensitivePrefix = "auth_";

// U+212A KELVIN SIGN, which Python's str.lower() turns into an ASCII 'k'.
constexpr std::string_view kKelvinSign = "\xE2\x84\xAA";

uint8_t Byte(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

// Length of the whitespace character that starts at s[i], 0 when there is none. Whitespace is
// what Python's str.isspace() (and so `\s` and str.strip()) accepts: U+0009-U+000D,
// U+001C-U+001F, U+0020, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
// U+205F and U+3000. None of their UTF-8 encodings starts with a continuation byte, so a
// byte-by-byte scan of valid UTF-8 never finds one in the middle of another character.
size_t WhitespaceAt(std::string_view s, size_t i) {
  const uint8_t c = Byte(s, i);
  if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
  const size_t left = s.size() - i;
  if (c == 0xC2) {
    return left >= 2 && (Byte(s, i + 1) == 0x85 || Byte(s, i + 1) == 0xA0) ? 2 : 0;
  }
  if (left < 3 || c < 0xE1 || c > 0xE3) return 0;
  const uint8_t c1 = Byte(s, i + 1), c2 = Byte(s, i + 2);
  switch (c) {
    case 0xE1:  // U+1680
      return c1 == 0x9A && c2 == 0x80 ? 3 : 0;
    case 0xE2:  // U+2000-U+200A, U+2028, U+2029, U+202F; U+205F
      if (c1 == 0x80)
        return (c2 >= 0x80 && c2 <= 0x8A) || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF ? 3 : 0;
      return c1 == 0x81 && c2 == 0x9F ? 3 : 0;
    default:  // 0xE3: U+3000
      return c1 == 0x80 && c2 == 0x80 ? 3 : 0;
  }
}

// Length of the whitespace character that ends at s[end - 1], 0 when there is none.
size_t WhitespaceBefore(std::string_view s, size_t end) {
  for (size_t n = 1; n <= 3 && n <= end; ++n) {
    if (WhitespaceAt(s, end - n) == n) return n;
  }
  return 0;
}

char Normalized(char c) { return c == '-' ? '_' : LowerAscii(c); }

// Whether `pattern` (ASCII, lower case, '_' for '-') matches `key` from byte `i`, the key read
// as Python's key.lower().replace("-", "_") would make it; sets *end past the match.
//
// Lower-casing ASCII is enough because only two non-ASCII characters lower-case to something
// holding ASCII: U+212A KELVIN SIGN -> 'k', handled here, and U+0130 (capital I with dot) ->
// "i" + U+0307. The latter can never take part in a match: no pattern ends with 'i', and the
// combining dot that follows the 'i' is not ASCII. Every other non-ASCII byte stays itself and
// matches no pattern byte.
bool MatchAt(std::string_view key, size_t i, std::string_view pattern, size_t* end) {
  for (char p : pattern) {
    if (i < key.size() && Normalized(key[i]) == p) {
      ++i;
    } else if (p == 'k' && key.substr(i, kKelvinSign.size()) == kKelvinSign) {
      i += kKelvinSign.size();
    } else {
      return false;
    }
  }
  *end = i;
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Sets *out to the bytes of `key` decoded as urllib.parse.unquote_plus decodes them: '+' is a
// space, %XX (either case) the byte XX, and a '%' not followed by two hex digits stays itself.
// Python then decodes the bytes as UTF-8 with errors="replace"; the replacement characters are
// not needed here, since an invalid byte matches nothing either way (see MatchAt) and is never
// whitespace.
void UnquotePlus(std::string_view key, std::string* out) {
  out->clear();
  for (size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%' && i + 2 < key.size() && HexDigit(key[i + 1]) >= 0 &&
               HexDigit(key[i + 2]) >= 0) {
      out->push_back(static_cast<char>(HexDigit(key[i + 1]) * 16 + HexDigit(key[i + 2])));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
}

// The key test of a query parameter: its key percent-decoded first.
bool IsSensitiveEncodedKey(std::string_view key, std::string* scratch) {
  if (key.find_first_of("%+") == std::string_view::npos) return IsSensitiveParameterName(key);
  UnquotePlus(key, scratch);
  return IsSensitiveParameterName(*scratch);
}

// The output of a rewrite, built only once a first change is made: until then nothing is copied.
class Rewrite {
 public:
  explicit Rewrite(std::string_view in) : in_(in) {}

  bool changed() const { return changed_; }

  // Replaces in[begin, end) by `with`; calls come in input order and do not overlap.
  void Replace(size_t begin, size_t end, std::string_view with) {
    if (!changed_) {
      changed_ = true;
      buf_.reserve(in_.size() + 16);
    }
    buf_.append(in_.substr(copied_, begin - copied_));
    buf_.append(with);
    copied_ = end;
  }

  // The rewritten text; only when changed().
  std::string Take() {
    buf_.append(in_.substr(copied_));
    copied_ = in_.size();
    return std::move(buf_);
  }

 private:
  std::string_view in_;
  std::string buf_;
  size_t copied_ = 0;
  bool changed_ = false;
};

// [A-Za-z0-9_.-]
bool IsPairKeyChar(char c) {
  return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_' || c == '.' || c == '-';
}

// Whether s[i] ends a URL in text: it is not in [^\s'"<>].
bool EndsUrl(std::string_view s, size_t i) {
  const char c = s[i];
  return c == '\'' || c == '"' || c == '<' || c == '>' || WhitespaceAt(s, i) != 0;
}

// Whether s[i] ends a pair's value: it is not in [^\s&,;:='"].
bool EndsPairValue(std::string_view s, size_t i) {
  switch (s[i]) {
    case '&':
    case ',':
    case ';':
    case ':':
    case '=':
    case '\'':
    case '"':
      return true;
    default:
      return WhitespaceAt(s, i) != 0;
  }
}

// re.sub(URL-in-text, RedactUrl, text). A match starts at a letter and runs over scheme
// characters up to "://"; starting at a later letter of the same run reaches the same "://", so
// after a failed start the scan resumes at the end of the run.
bool RedactUrlsInText(std::string_view text, std::string* out) {
  Rewrite rewrite(text);
  std::string redacted;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (!IsAsciiLetter(text[i])) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && IsSchemeChar(text[j])) ++j;
    if (text.substr(j, 3) != "://" || j + 3 >= n || EndsUrl(text, j + 3)) {
      i = j;
      continue;
    }
    size_t end = j + 4;
    while (end < n && !EndsUrl(text, end)) ++end;
    if (RedactUrl(text.substr(i, end - i), &redacted)) rewrite.Replace(i, end, redacted);
    i = end;
  }
  if (!rewrite.changed()) return false;
  *out = rewrite.Take();
  return true;
}

// re.sub(pair-in-text, ...) over `text`. The key is the whole run of key characters before the
// separator (a shorter key would leave a key character where the separator must be), so after a
// failed start the scan resumes at the end of the run, as for URLs.
bool RedactPairsInText(std::string_view text, std::string* out) {
  Rewrite rewrite(text);
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (!IsPairKeyChar(text[i])) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && IsPairKeyChar(text[j])) ++j;
    if (j + 1 >= n || (text[j] != '=' && text[j] != ':') || EndsPairValue(text, j + 1)) {
      i = j;
      continue;
    }
    size_t end = j + 2;
    while (end < n && !EndsPairValue(text, end)) ++end;
    // A value the URL pass already redacted ends before the URL's fragment, which is kept.
    const size_t after_marker = j + 1 + kRedacted.size();
    if (after_marker < end && text[after_marker] == '#' &&
        text.substr(j + 1, kRedacted.size()) == kRedacted) {
      end = after_marker;
    }
    const std::string_view value = text.substr(j + 1, end - j - 1);
    // A value already redacted, or the "//host/..." of a URL after its "scheme:", is kept.
    if (value != kRedacted && value.substr(0, 2) != "//" &&
        IsSensitiveParameterName(text.substr(i, j - i))) {
      rewrite.Replace(j + 1, end, kRedacted);
    }
    i = end;
  }
  if (!rewrite.changed()) return false;
  *out = rewrite.Take();
  return true;
}

}  // namespace

bool IsSensitiveParameterName(std::string_view key) noexcept {
  // str.strip(): Unicode whitespace at both ends.
  size_t begin = 0, end = key.size();
  while (begin < end) {
    const size_t n = WhitespaceAt(key, begin);
    if (n == 0 || begin + n > end) break;
    begin += n;
  }
  while (end > begin) {
    const size_t n = WhitespaceBefore(key.substr(0, end), end);
    if (n == 0 || end - n < begin) break;
    end -= n;
  }
  key = key.substr(begin, end - begin);

  size_t match_end = 0;
  for (std::string_view whole : kSensitiveKeys) {
    if (MatchAt(key, 0, whole, &match_end) && match_end == key.size()) return true;
  }
  if (MatchAt(key, 0, kSensitivePrefix, &match_end)) return true;
  for (size_t i = 0; i < key.size(); ++i) {
    for (std::string_view part : kSensitiveParts) {
      if (MatchAt(key, i, part, &match_end)) return true;
    }
  }
  return false;
}

bool RedactQueryString(std::string_view query, std::string* out) {
  if (query.find('=') == std::string_view::npos) return false;
  Rewrite rewrite(query);
  std::string scratch;
  size_t begin = 0;
  while (true) {
    size_t end = query.find('&', begin);
    const bool last = end == std::string_view::npos;
    if (last) end = query.size();
    const std::string_view param = query.substr(begin, end - begin);
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && eq + 1 < param.size() &&
        param.substr(eq + 1) != kRedacted && IsSensitiveEncodedKey(param.substr(0, eq), &scratch)) {
      rewrite.Replace(begin + eq + 1, end, kRedacted);
    }
    if (last) break;
    begin = end + 1;
  }
  if (!rewrite.changed()) return false;
  *out = rewrite.Take();
  return true;
}

bool RedactUrl(std::string_view url, std::string* out) {
  std::string with_authority;  // the URL with its userinfo replaced, when it had one
  bool changed = false;
  // Like the Python, any "://" not at the start opens the authority, which ends at the first
  // '/', '?' or '#' after it; its userinfo is everything before the authority's last '@'.
  const size_t scheme_end = url.find("://");
  if (scheme_end != std::string_view::npos && scheme_end > 0) {
    const size_t authority = scheme_end + 3;
    size_t path = url.find_first_of("/?#", authority);
    if (path == std::string_view::npos) path = url.size();
    const std::string_view netloc = url.substr(authority, path - authority);
    const size_t at = netloc.rfind('@');
    if (at != std::string_view::npos && netloc.substr(0, at) != kRedactedUserinfo) {
      with_authority.reserve(url.size() + kRedactedUserinfo.size());
      with_authority.append(url.substr(0, authority));
      with_authority.append(kRedactedUserinfo);
      with_authority.append(url.substr(authority + at));  // from the '@'
      url = with_authority;
      changed = true;
    }
  }
  // The query starts at the first '?' of the (rewritten) URL and ends at the next '#'.
  std::string query;
  const size_t q = url.find('?');
  if (q != std::string_view::npos) {
    size_t fragment = url.find('#', q);
    if (fragment == std::string_view::npos) fragment = url.size();
    if (RedactQueryString(url.substr(q + 1, fragment - q - 1), &query)) {
      std::string result;
      result.reserve(q + 1 + query.size() + url.size() - fragment);
      result.append(url.substr(0, q + 1));
      result.append(query);
      result.append(url.substr(fragment));
      *out = std::move(result);
      return true;
    }
  }
  if (!changed) return false;
  *out = std::move(with_authority);
  return true;
}

bool RedactText(std::string_view text, std::string* out) {
  std::string urls_done;
  bool changed = false;
  if (text.find("://") != std::string_view::npos && RedactUrlsInText(text, &urls_done)) {
    text = urls_done;
    changed = true;
  }
  std::string pairs_done;
  if (text.find_first_of("=:") != std::string_view::npos && RedactPairsInText(text, &pairs_done)) {
    *out = std::move(pairs_done);
    return true;
  }
  if (!changed) return false;
  *out = std::move(urls_done);
  return true;
}

}  // namespace djtrace::http
