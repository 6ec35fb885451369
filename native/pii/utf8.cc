#include "pii/utf8.h"

#include <cstring>

namespace djtrace::pii {

size_t DecodeUtf8(const unsigned char* p, size_t n, uint32_t* code_point) noexcept {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  // Second-byte bounds depend on the lead byte (table 3-7); later bytes are always 80..BF.
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    *code_point = 1;  // 80..C1 and F5..FF never start a sequence
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (k >= n) {
      *code_point = k;
      return 0;
    }
    const unsigned char b = p[k];
    const unsigned char l = k == 1 ? lo : 0x80;
    const unsigned char h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *code_point = k;  // the lead and the good continuation bytes so far form the subpart
      return 0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *code_point = cp;
  return need + 1;
}

size_t ValidUtf8Prefix(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // Attribute text is mostly ASCII: test eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    uint32_t cp;
    const size_t len = DecodeUtf8(p + i, n - i, &cp);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

void AppendRepairedUtf8(std::string_view text, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const size_t good = i + ValidUtf8Prefix(text.substr(i));
    out->append(text.data() + i, good - i);
    i = good;
    if (i >= n) break;
    uint32_t subpart;
    DecodeUtf8(p + i, n - i, &subpart);
    out->append(kReplacementCharacter);
    i += subpart;
  }
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace djtrace::pii
