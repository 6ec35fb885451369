// Small helpers for writing JSON text into a std::string, shared by the OTLP/JSON encoder and
// the console printer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace {

// Appends the contents of a JSON string literal for `s` (without the quotes): '"', '\\' and
// control characters escaped, other bytes kept as UTF-8, and each ill-formed UTF-8 subpart
// replaced by U+FFFD so that the output is always valid JSON.
void AppendJsonStringContent(std::string_view s, std::string& out);

// Appends `s` as a quoted JSON string.
inline void AppendJsonString(std::string_view s, std::string& out) {
  out.push_back('"');
  AppendJsonStringContent(s, out);
  out.push_back('"');
}

// Appends the shortest decimal form that reads back as the same double (no quotes). NaN and
// infinities, which JSON numbers cannot express, are written as the protobuf JSON mapping
// spells them, quoted: "NaN", "Infinity", "-Infinity".
void AppendJsonDouble(double value, std::string& out);

// Appends lowercase hex of `n` bytes.
void AppendHex(const uint8_t* data, size_t n, std::string& out);

}  // namespace djtrace
