#include "export/utf8.h"

#include <cstring>

namespace djtrace {
namespace {

inline bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Length of the all-ASCII prefix, eight bytes at a time: most of what we encode is ASCII.
inline size_t AsciiPrefix(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word & 0x8080808080808080ULL) break;
  }
  while (i < n && p[i] < 0x80) ++i;
  return i;
}

}  // namespace

int Utf8Step(const uint8_t* p, size_t n) noexcept {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return 1;
  // The second byte's allowed range depends on the lead byte (Unicode Table 3-7); that is
  // where overlong forms, surrogates and code points above U+10FFFF are excluded.
  int length;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;  // a stray continuation byte, C0, C1 or F5..FF
  }
  if (n < 2 || p[1] < lo || p[1] > hi) return -1;
  for (int i = 2; i < length; ++i) {
    if (static_cast<size_t>(i) >= n || !IsContinuation(p[i])) return -i;
  }
  return length;
}

bool IsValidUtf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  size_t i = AsciiPrefix(p, n);
  while (i < n) {
    if (p[i] < 0x80) {
      i += AsciiPrefix(p + i, n - i);
      continue;
    }
    int step = Utf8Step(p + i, n - i);
    if (step < 0) return false;
    i += static_cast<size_t>(step);
  }
  return true;
}

size_t SanitizedUtf8Length(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  size_t length = 0;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      size_t run = AsciiPrefix(p + i, n - i);
      i += run;
      length += run;
      continue;
    }
    int step = Utf8Step(p + i, n - i);
    if (step > 0) {
      i += static_cast<size_t>(step);
      length += static_cast<size_t>(step);
    } else {
      i += static_cast<size_t>(-step);
      length += kUtf8Replacement.size();
    }
  }
  return length;
}

char* WriteSanitizedUtf8(std::string_view s, char* dst) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t start = i;
    while (i < n) {
      if (p[i] < 0x80) {
        i += AsciiPrefix(p + i, n - i);
        continue;
      }
      int step = Utf8Step(p + i, n - i);
      if (step < 0) break;
      i += static_cast<size_t>(step);
    }
    std::memcpy(dst, s.data() + start, i - start);
    dst += i - start;
    if (i < n) {
      i += static_cast<size_t>(-Utf8Step(p + i, n - i));
      std::memcpy(dst, kUtf8Replacement.data(), kUtf8Replacement.size());
      dst += kUtf8Replacement.size();
    }
  }
  return dst;
}

void AppendSanitizedUtf8(std::string_view s, std::string& out) {
  size_t old_size = out.size();
  out.resize(old_size + SanitizedUtf8Length(s));
  WriteSanitizedUtf8(s, out.data() + old_size);
}

}  // namespace djtrace
