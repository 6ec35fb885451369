// Glob patterns for attribute keys (allow-list and deny-list rules from configuration).
//
// Syntax, chosen because attribute keys are short dotted names and a glob cannot be made slow:
//   *      any run of characters, dots included ("*.password", "http.request.header.x-*")
//   ?      exactly one character
//   \c     the character c itself (to match a literal '*', '?' or '\')
//   other  itself, compared ignoring ASCII case (header names are case-insensitive)
// The whole key must match. Matching is O(len(key) * len(pattern)) at worst, with no recursion.
#pragma once

#include <string>
#include <string_view>

namespace djtrace::pii {

// Returns false (and sets *error) for a pattern that is empty, longer than 256 bytes or ends in
// a lone backslash.
bool ValidateKeyGlob(std::string_view pattern, std::string* error);

bool KeyGlobMatch(std::string_view pattern, std::string_view key) noexcept;

}  // namespace djtrace::pii
