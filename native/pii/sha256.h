// SHA-256 (FIPS 180-4), written here so that the pii library needs no crypto dependency for its
// one use, keyed pseudonyms. Checked against the FIPS example vectors in the tests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace djtrace::pii {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  static constexpr size_t kBlockSize = 64;

  Sha256() noexcept { Reset(); }
  void Reset() noexcept;
  void Update(const void* data, size_t size) noexcept;
  void Update(std::string_view data) noexcept { Update(data.data(), data.size()); }
  // Pads, returns the digest and leaves the object in an unspecified state (Reset to reuse).
  Sha256Digest Final() noexcept;

 private:
  void Compress(const uint8_t* block) noexcept;

  uint32_t state_[8];
  uint64_t length_ = 0;  // bytes hashed so far
  uint8_t buffer_[kBlockSize];
  size_t buffered_ = 0;
};

Sha256Digest Sha256Of(std::string_view data) noexcept;

}  // namespace djtrace::pii
