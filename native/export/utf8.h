// UTF-8 validation and repair for the encoders. Protobuf `string` fields must hold well-formed
// UTF-8 (a Go receiver such as the OpenTelemetry Collector rejects the whole request otherwise),
// and so must JSON text; strings reach us from truncation limits and raw SQL that may cut or
// carry bad bytes. Repair follows the Unicode "maximal subpart" practice (the same result as
// Python's bytes.decode("utf-8", "replace")): each maximal ill-formed subsequence becomes one
// U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace {

inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";  // U+FFFD

// Looks at the sequence starting at p[0] (n > 0 bytes available). Returns its length (1-4) if
// it is a well-formed UTF-8 sequence, or minus the length of its maximal ill-formed subpart
// (-1 to -3) if it is not.
int Utf8Step(const uint8_t* p, size_t n) noexcept;

// True if `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s) noexcept;

// Length of `s` once every maximal ill-formed subpart is replaced by U+FFFD.
size_t SanitizedUtf8Length(std::string_view s) noexcept;

// Writes the repaired form of `s` to `dst`, which must have room for SanitizedUtf8Length(s)
// bytes, and returns the end of what was written.
char* WriteSanitizedUtf8(std::string_view s, char* dst) noexcept;

// Appends the repaired form of `s` to `out`.
void AppendSanitizedUtf8(std::string_view s, std::string& out);

}  // namespace djtrace
