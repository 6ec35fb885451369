#include "export/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "export/utf8.h"

namespace djtrace {
namespace {

// True if any of the eight bytes needs attention: < 0x20, '"', '\\' or >= 0x80 (SWAR: the
// classic "has a byte less than n" and "has a zero byte" tricks).
inline bool NeedsAttention(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  uint64_t control = (word - kOnes * 0x20) & ~word;
  uint64_t quote = word ^ (kOnes * '"');
  uint64_t backslash = word ^ (kOnes * '\\');
  uint64_t zero_quote = (quote - kOnes) & ~quote;
  uint64_t zero_backslash = (backslash - kOnes) & ~backslash;
  return ((control | zero_quote | zero_backslash) & kHighs) != 0 || (word & kHighs) != 0;
}

inline bool PlainByte(uint8_t b) { return b >= 0x20 && b < 0x80 && b != '"' && b != '\\'; }

}  // namespace

void AppendJsonStringContent(std::string_view s, std::string& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Copy the longest run that needs no escaping in one append.
    size_t start = i;
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (NeedsAttention(word)) break;
      i += 8;
    }
    while (i < n && PlainByte(p[i])) ++i;
    if (i > start) out.append(s.data() + start, i - start);
    if (i >= n) break;

    uint8_t b = p[i];
    if (b >= 0x80) {
      int step = Utf8Step(p + i, n - i);
      if (step > 0) {
        out.append(s.data() + i, static_cast<size_t>(step));
        i += static_cast<size_t>(step);
      } else {
        out.append(kUtf8Replacement);
        i += static_cast<size_t>(-step);
      }
      continue;
    }
    ++i;
    switch (b) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        char escape[6] = {'\\', 'u', '0', '0', kHex[b >> 4], kHex[b & 0xF]};
        out.append(escape, 6);
      }
    }
  }
}

void AppendJsonDouble(double value, std::string& out) {
  if (std::isnan(value)) {
    out.append("\"NaN\"");
  } else if (std::isinf(value)) {
    out.append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    char buffer[32];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
  }
}

void AppendHex(const uint8_t* data, size_t n, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t old_size = out.size();
  out.resize(old_size + 2 * n);
  char* p = out.data() + old_size;
  for (size_t i = 0; i < n; ++i) {
    *p++ = kHex[data[i] >> 4];
    *p++ = kHex[data[i] & 0xF];
  }
}

}  // namespace djtrace
