// HMAC-SHA256 (RFC 2104) for keyed pseudonyms: the same value under the same secret always gives
// the same token, so spans stay joinable on a user without the user's identifier leaving the
// process, and without the secret nobody can test a guess against the token.
#pragma once

#include <string>
#include <string_view>

#include "pii/sha256.h"

namespace djtrace::pii {

// A key prepared once: the inner and outer pad blocks are hashed at construction, so each
// message costs its own bytes plus two compressions.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key) noexcept;

  Sha256Digest Sign(std::string_view message) const noexcept;

 private:
  Sha256 inner_;  // state after absorbing key ^ ipad
  Sha256 outer_;  // state after absorbing key ^ opad
};

// One-shot helper.
Sha256Digest HmacSha256Of(std::string_view key, std::string_view message) noexcept;

// Lowercase hex of the first `hex_chars` hex digits of `digest` (at most 64).
void AppendHex(const Sha256Digest& digest, size_t hex_chars, std::string* out);

}  // namespace djtrace::pii
