#include "pii/glob.h"

namespace djtrace::pii {
namespace {

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

bool ValidateKeyGlob(std::string_view pattern, std::string* error) {
  if (pattern.empty()) {
    *error = "empty key pattern";
    return false;
  }
  if (pattern.size() > 256) {
    *error = "key pattern longer than 256 bytes";
    return false;
  }
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size()) {
        *error = "key pattern ends in a lone backslash";
        return false;
      }
      ++i;
    }
  }
  return true;
}

bool KeyGlobMatch(std::string_view pattern, std::string_view key) noexcept {
  // Greedy match with one remembered star: on a mismatch, let the last '*' absorb one more
  // character and retry from there. Earlier stars never need revisiting, which bounds the work
  // by len(key) * len(pattern).
  size_t p = 0, k = 0;
  size_t star_p = std::string_view::npos, star_k = 0;
  while (k < key.size()) {
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_k = k;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++k;
        continue;
      }
      char literal = pc;
      size_t width = 1;
      if (pc == '\\' && p + 1 < pattern.size()) {
        literal = pattern[p + 1];
        width = 2;
      }
      if (Lower(literal) == Lower(key[k])) {
        p += width;
        ++k;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    k = ++star_k;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace djtrace::pii
