// Redaction of the values integrations put into spans from URLs, query strings, command
// options and free text (cache keys, command arguments), before they are recorded.
//
//   - A query parameter or `key=value` pair whose *key* looks sensitive (see
//     IsSensitiveParameterName) keeps its key and loses its value, which becomes "REDACTED", as
//     the HTTP semantic conventions ask for url.query and url.full. Order, encoding and every
//     other byte are kept.
//   - Credentials in a URL (`scheme://user:pass@host`) become `REDACTED:REDACTED@host`.
//   - Free text gets both treatments for the URLs and `key=value` / `key:value` pairs it holds.
//
// Each function returns false, and leaves `out` alone, when the input needs no change: the
// caller then records the input as it is, without a copy.
#pragma once

#include <string>
#include <string_view>

namespace djtrace::http {

inline constexpr std::string_view kRedacted = "REDACTED";

// ASCII character classes of URL syntax, shared by the units that parse URLs.
inline bool IsAsciiLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
inline bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsAsciiHexDigit(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// [A-Za-z0-9+.-]: what follows the first letter of a URL scheme.
inline bool IsSchemeChar(char c) {
  return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '+' || c == '.' || c == '-';
}
inline char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// True when a value stored under `key` must not be exported. The key is compared trimmed of
// ASCII whitespace, in lower case and with '-' read as '_':
//   - it contains password, passwd, passphrase, secret, token, api_key, apikey, access_key,
//     accesskey, private_key, authoriz, session, csrf, xsrf, signature, credential, cookie or
//     jwt, or
//   - it starts with auth_, or
//   - it is sig, pwd, pass, key, auth, otp, pin, x_goog_signature, awsaccesskeyid or
//     code_verifier.
bool IsSensitiveParameterName(std::string_view key) noexcept;

// `a=1&password=x` -> `a=1&password=REDACTED`. Parameters are split on '&'; a key is
// percent-decoded ('+' read as a space) before the test. Empty values stay empty.
bool RedactQueryString(std::string_view query, std::string* out);

// Removes the userinfo of the authority (`scheme://user:pass@host/...`) and the values of
// sensitive query parameters (the query ends at '#'; the fragment is kept).
bool RedactUrl(std::string_view url, std::string* out);

// Redacts, inside free text:
//   - every URL (`[A-Za-z][A-Za-z0-9+.-]*://` followed by the longest run of bytes that are not
//     whitespace, quotes or angle brackets), as RedactUrl does;
//   - every `key=value` or `key:value` pair, where key is a run of [A-Za-z0-9_.-] and value a
//     run of bytes that are not whitespace or one of & , ; : = ' ", whose key is sensitive. A
//     value that is already "REDACTED" or starts with "//" (the rest of a URL) is kept.
bool RedactText(std::string_view text, std::string* out);

}  // namespace djtrace::http
