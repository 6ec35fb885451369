// Fuzzes the redaction of query strings, URLs and free text (http/url.h) with the same bytes:
//   - nothing may crash;
//   - a false return leaves `out` alone and means the input needs no change: the output of a
//     true return differs from the input;
//   - each function agrees with a slow reference written here a different way (the key test on a
//     normalised copy of the key, the text scanners trying every start position instead of
//     skipping runs, whitespace found by decoding code points);
//   - redacting an output again changes nothing, for the inputs where the rules allow it (see
//     CheckIdempotent);
//   - valid UTF-8 stays valid UTF-8 (the Python binding decodes the output);
//   - the HTTP client span's attributes (http/client_request.h) record url.full as RedactUrl
//     does, a port in 1-65535, a host without brackets, and valid UTF-8 from valid UTF-8.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "http/client_request.h"
#include "http/url.h"

namespace {

using djtrace::http::IsSensitiveParameterName;
using djtrace::http::kRedacted;
using djtrace::http::RedactQueryString;
using djtrace::http::RedactText;
using djtrace::http::RedactUrl;

constexpr std::string_view kUntouched = "\x01untouched\x02";

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// --- UTF-8 ----------------------------------------------------------------------------------

// The code point encoded at s[i] and its length, or 0 for a byte that does not start a valid
// sequence (no overlongs, no surrogates, at most U+10FFFF).
size_t Decode(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const size_t left = s.size() - i;
  const uint8_t c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (left < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

bool IsValidUtf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    const size_t n = Decode(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Python's str.isspace().
bool IsPythonSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Length of the whitespace character at s[i], or 0.
size_t SpaceAt(std::string_view s, size_t i) {
  uint32_t cp;
  const size_t n = Decode(s, i, &cp);
  return n != 0 && IsPythonSpace(cp) ? n : 0;
}

// --- reference implementation ----------------------------------------------------------------

bool RefSensitive(std::string_view key) {
  // Trim by decoding from the front; from the back, try the lengths a character can have.
  size_t begin = 0, end = key.size();
  while (begin < end && SpaceAt(key.substr(0, end), begin) != 0) {
    begin += SpaceAt(key.substr(0, end), begin);
  }
  for (bool trimmed = true; trimmed && end > begin;) {
    trimmed = false;
    for (size_t n = 1; n <= 4 && n <= end - begin; ++n) {
      if (SpaceAt(key.substr(0, end), end - n) == n) {
        end -= n;
        trimmed = true;
        break;
      }
    }
  }
  std::string norm;
  for (size_t i = begin; i < end; ++i) {
    char c = key[i];
    if (key.substr(i, 3) == "\xE2\x84\xAA") {  // KELVIN SIGN
      norm += 'k';
      i += 2;
      continue;
    }
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    norm += c == '-' ? '_' : c;
  }
  for (std::string_view whole : {"sig", "pwd", "pass", "key", "auth", "otp", "pin",
                                 "x_goog_signature", "awsaccesskeyid", "code_verifier"}) {
    if (norm == whole) return true;
  }
  if (norm.rfind("auth_", 0) == 0) return true;
  for (std::string_view part :
       {"password", "passwd", "passphrase", "secret", "token", "api_key", "apikey", "access_key",
        "accesskey", "private_key", "authoriz", "session", "csrf", "xsrf", "signature",
        "credential", "cookie", "jwt"}) {
    if (norm.find(part) != std::string::npos) return true;
  }
  return false;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

std::string RefUnquotePlus(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
      out += static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// query.split("&"), each part.partition("="), rebuilt whole.
std::string RefQuery(std::string_view query) {
  std::string out;
  size_t begin = 0;
  for (;;) {
    const size_t end = query.find('&', begin);
    const std::string_view part = query.substr(begin, end == query.npos ? query.npos : end - begin);
    const size_t eq = part.find('=');
    if (eq != part.npos && eq + 1 < part.size() &&
        RefSensitive(RefUnquotePlus(part.substr(0, eq)))) {
      out.append(part.substr(0, eq + 1)).append(kRedacted);
    } else {
      out.append(part);
    }
    if (end == query.npos) break;
    out += '&';
    begin = end + 1;
  }
  return out;
}

std::string RefUrl(std::string_view in) {
  std::string url(in);
  const size_t scheme_end = url.find("://");
  if (scheme_end != url.npos && scheme_end > 0) {
    const size_t rest = scheme_end + 3;
    size_t path = url.size();
    for (char sep : {'/', '?', '#'}) path = std::min(path, url.find(sep, rest));
    const std::string netloc = url.substr(rest, path - rest);
    if (netloc.find('@') != netloc.npos) {
      url = url.substr(0, rest) + "REDACTED:REDACTED@" + netloc.substr(netloc.rfind('@') + 1) +
            url.substr(path);
    }
  }
  const size_t q = url.find('?');
  if (q == url.npos) return url;
  const size_t fragment = std::min(url.find('#', q), url.size());
  return url.substr(0, q + 1) + RefQuery(std::string_view(url).substr(q + 1, fragment - q - 1)) +
         url.substr(fragment);
}

bool Letter(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool Digit(char c) { return c >= '0' && c <= '9'; }

// re.sub with every start position tried in turn.
std::string RefText(std::string_view text) {
  std::string pass1;
  for (size_t i = 0; i < text.size();) {
    size_t j = i;
    if (Letter(text[j])) {
      ++j;
      while (j < text.size() && (Letter(text[j]) || Digit(text[j]) || text[j] == '+' ||
                                 text[j] == '.' || text[j] == '-')) {
        ++j;
      }
    }
    size_t end = j + 3;
    if (j > i && text.substr(j, 3) == "://") {
      while (end < text.size() && std::string_view("'\"<>").find(text[end]) == text.npos &&
             SpaceAt(text, end) == 0) {
        ++end;
      }
    }
    if (end > j + 3) {
      pass1 += RefUrl(text.substr(i, end - i));
      i = end;
    } else {
      pass1 += text[i++];
    }
  }
  const std::string_view t = pass1;
  std::string out;
  const auto key_char = [](char c) {
    return Letter(c) || Digit(c) || c == '_' || c == '.' || c == '-';
  };
  for (size_t i = 0; i < t.size();) {
    size_t j = i;
    while (j < t.size() && key_char(t[j])) ++j;
    size_t end = j + 1;
    if (j > i && j < t.size() && (t[j] == '=' || t[j] == ':')) {
      if (t.substr(j + 1, kRedacted.size() + 1) == std::string(kRedacted) + "#") {
        end = j + 1 + kRedacted.size();  // REDACTED(?=#): a redacted URL value before its fragment
      } else {
        while (end < t.size() && std::string_view("&,;:='\"").find(t[end]) == t.npos &&
               SpaceAt(t, end) == 0) {
          ++end;
        }
      }
    }
    if (end > j + 1) {
      const std::string_view value = t.substr(j + 1, end - j - 1);
      out.append(t.substr(i, j + 1 - i));
      if (value == kRedacted || value.substr(0, 2) == "//" || !RefSensitive(t.substr(i, j - i))) {
        out.append(value);
      } else {
        out.append(kRedacted);
      }
      i = end;
    } else {
      out += t[i++];
    }
  }
  return out;
}

// --- checks ----------------------------------------------------------------------------------

using Redact = bool (*)(std::string_view, std::string*);

// The output of `redact` (the input itself when it returns false), with the contract checked.
std::string Run(Redact redact, std::string_view in) {
  std::string out(kUntouched);
  if (!redact(in, &out)) {
    Check(out == kUntouched);
    return std::string(in);
  }
  Check(out != in);
  return out;
}

// Redacting again changes nothing, except where the former Python rules themselves are not
// idempotent, which this port keeps (the reference checks cover those inputs):
//   - RedactUrl: when a '?' comes before the first "://", the query may hold that "://" inside a
//     value that is redacted; a later "://" then opens the authority on the second run.
//   - RedactText, on text holding a URL: the pair pass runs over the redacted URLs and a value it
//     redacts can swallow URL syntax: the fragment in "?token=REDACTED#frag", the '/' that ended
//     an authority ("x:/a://key=/u:p@h" loses "/u"), the '<' or '>' that ended a URL; or it turns
//     "key=v://" into "key=REDACTED://", a new URL. The second run then sees other URLs. Text
//     without "://" has no URL on either run, and the pair pass alone is idempotent.
void CheckIdempotent(Redact redact, std::string_view in, const std::string& once) {
  if (redact == RedactUrl) {
    const size_t scheme = in.find("://");
    const size_t q = in.find('?');
    if (q != in.npos && (scheme == in.npos || q < scheme)) return;
  }
  if (redact == RedactText && in.find("://") != in.npos) return;
  Check(Run(redact, once) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // the references are quadratic
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool valid = IsValidUtf8(input);

  Check(IsSensitiveParameterName(input) == RefSensitive(input));

  const std::string query = Run(RedactQueryString, input);
  Check(query == RefQuery(input));
  CheckIdempotent(RedactQueryString, input, query);

  const std::string url = Run(RedactUrl, input);
  Check(url == RefUrl(input));
  CheckIdempotent(RedactUrl, input, url);

  const std::string text = Run(RedactText, input);
  Check(text == RefText(input));
  CheckIdempotent(RedactText, input, text);

  if (valid) Check(IsValidUtf8(query) && IsValidUtf8(url) && IsValidUtf8(text));

  djtrace::Attributes attrs;
  const std::string name = djtrace::http::AppendClientRequestAttributes("GET", input, true, &attrs);
  Check(name == "GET");
  for (const djtrace::Attribute& a : attrs) {
    if (const auto* s = std::get_if<std::string>(&a.value)) {
      if (a.key == "url.full" || a.key == "http.url") Check(*s == url);
      if (a.key == "server.address" || a.key == "net.peer.name")
        Check(!s->empty() && s->find_first_of("[]@/?#") == std::string::npos);
      if (valid) Check(IsValidUtf8(*s));
    } else {
      const int64_t port = std::get<int64_t>(a.value);
      Check(port >= 1 && port <= 65535);
    }
  }
  return 0;
}
