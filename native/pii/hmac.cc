#include "pii/hmac.h"

#include <cstring>

namespace djtrace::pii {

HmacSha256::HmacSha256(std::string_view key) noexcept {
  uint8_t block[Sha256::kBlockSize] = {};
  if (key.size() > Sha256::kBlockSize) {
    const Sha256Digest hashed = Sha256Of(key);
    std::memcpy(block, hashed.data(), hashed.size());
  } else if (!key.empty()) {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[Sha256::kBlockSize];
  for (size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x36;
  inner_.Update(pad, sizeof(pad));
  for (size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x5c;
  outer_.Update(pad, sizeof(pad));
}

Sha256Digest HmacSha256::Sign(std::string_view message) const noexcept {
  Sha256 inner = inner_;
  inner.Update(message);
  const Sha256Digest inner_digest = inner.Final();
  Sha256 outer = outer_;
  outer.Update(inner_digest.data(), inner_digest.size());
  return outer.Final();
}

Sha256Digest HmacSha256Of(std::string_view key, std::string_view message) noexcept {
  return HmacSha256(key).Sign(message);
}

void AppendHex(const Sha256Digest& digest, size_t hex_chars, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (hex_chars > 64) hex_chars = 64;
  for (size_t i = 0; i < hex_chars; ++i) {
    const uint8_t byte = digest[i / 2];
    out->push_back(kHex[(i % 2 == 0) ? (byte >> 4) : (byte & 0x0F)]);
  }
}

}  // namespace djtrace::pii
