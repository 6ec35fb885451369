// UTF-8 well-formedness for redaction output. Span text arrives from Python (always valid) and
// from C extensions, headers and byte strings (not always); OTLP requires valid UTF-8 in string
// fields and a collector may drop a whole batch for one bad byte, so every value that leaves the
// redactor is repaired.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace::pii {

// U+FFFD REPLACEMENT CHARACTER, encoded.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Decodes the code point starting at text[0]. Returns its length in bytes (1-4) and stores the
// code point in *code_point, or returns 0 if the sequence is ill-formed (Unicode table 3-7:
// no overlongs, no surrogates, nothing above U+10FFFF); then *code_point is the length of the
// maximal subpart that one U+FFFD stands for (at least 1). `size` must be at least 1.
size_t DecodeUtf8(const unsigned char* text, size_t size, uint32_t* code_point) noexcept;

// Length of the longest well-formed prefix of `text`; equals text.size() for valid text.
size_t ValidUtf8Prefix(std::string_view text) noexcept;

inline bool IsValidUtf8(std::string_view text) noexcept {
  return ValidUtf8Prefix(text) == text.size();
}

// Appends `text` to *out with each maximal ill-formed subpart replaced by one U+FFFD (the
// "substitution of maximal subparts" practice of Unicode chapter 3, which WHATWG also uses).
// The result is at most 3 times the input length.
void AppendRepairedUtf8(std::string_view text, std::string* out);

// Appends the UTF-8 encoding of a scalar value (callers pass only valid ones).
void AppendUtf8(uint32_t code_point, std::string* out);

}  // namespace djtrace::pii
