// A fast, non-cryptographic 64-bit hash for SQL fingerprints, cache keys and parameter hashes.
//
// The design follows the multiply-fold family (wyhash, xxh3): 32-byte blocks feed two lanes
// through 64x64->128-bit multiplications whose halves are xor-folded. The constants are the
// hexadecimal digits of pi and of the golden ratio. Values are defined on little-endian byte
// order on every platform, so a fingerprint means the same thing on every host and across
// processes; changing the algorithm changes every exported fingerprint, which the known-answer
// test in hash_test.cc guards.
//
// Not suitable where an adversary chooses inputs to force collisions (it is unkeyed in effect).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace djtrace::sql {

namespace hash_internal {

inline constexpr uint64_t kK0 = 0x243f6a8885a308d3;  // pi
inline constexpr uint64_t kK1 = 0x13198a2e03707344;
inline constexpr uint64_t kK2 = 0xa4093822299f31d0;
inline constexpr uint64_t kK3 = 0x082efa98ec4e6c89;
inline constexpr uint64_t kK4 = 0x452821e638d01377;
inline constexpr uint64_t kK5 = 0x9e3779b97f4a7c15;  // golden ratio

inline constexpr size_t kBlock = 32;

inline uint64_t Load64(const unsigned char* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

// Copies n <= 32 bytes with a few fixed-size moves instead of a call to memcpy: the
// fingerprint feeds the hasher one short token at a time.
inline void CopyShort(unsigned char* d, const unsigned char* s, size_t n) noexcept {
  if (n >= 16) {
    std::memcpy(d, s, 16);
    std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else if (n > 0) {
    d[0] = s[0];
    d[n / 2] = s[n / 2];
    d[n - 1] = s[n - 1];
  }
}

// The 128-bit product of a and b, halves folded together.
inline uint64_t Fold(uint64_t a, uint64_t b) noexcept {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// One 32-byte block into the two lanes.
inline void Absorb(uint64_t& s0, uint64_t& s1, const unsigned char* b) noexcept {
  const uint64_t a = Fold(Load64(b) ^ s0, Load64(b + 8) ^ kK1) ^ std::rotl(s0, 29);
  const uint64_t c = Fold(Load64(b + 16) ^ s1, Load64(b + 24) ^ kK3) ^ std::rotl(s1, 31);
  s0 = a;
  s1 = c;
}

// The last block (0 to 32 bytes, zero-padded) and the length, into the result.
inline uint64_t Finalize(uint64_t s0, uint64_t s1, const unsigned char* tail, size_t n,
                         uint64_t total) noexcept {
  unsigned char block[kBlock] = {};
  std::memcpy(block, tail, n);
  Absorb(s0, s1, block);
  const uint64_t r = Fold(s0 ^ kK3 ^ total, s1 ^ kK4);
  return Fold(r ^ kK5, total ^ kK1);
}

}  // namespace hash_internal

// Incremental form: Hasher(seed).Update(a).Update(b).Finish() == HashBytes(a + b, seed) for any
// split of the input. Copyable, so a caller can snapshot the state and roll back to it.
class Hasher {
 public:
  Hasher() noexcept : Hasher(0) {}
  explicit Hasher(uint64_t seed) noexcept
      : s0_(seed ^ hash_internal::kK0), s1_(std::rotl(seed, 32) ^ hash_internal::kK2) {}

  Hasher& Update(std::string_view bytes) noexcept {
    const size_t n = bytes.size();
    if (n <= hash_internal::kBlock - buffered_) {  // fits: no block to absorb yet
      hash_internal::CopyShort(buffer_ + buffered_,
                               reinterpret_cast<const unsigned char*>(bytes.data()), n);
      buffered_ += n;
      total_ += n;
      return *this;
    }
    return UpdateLong(bytes);
  }

  // One byte: Put(b) is Update of a one-byte view, without the view.
  Hasher& Put(unsigned char byte) noexcept {
    if (buffered_ == hash_internal::kBlock) {
      Absorb(buffer_);
      buffered_ = 0;
    }
    buffer_[buffered_++] = byte;
    ++total_;
    return *this;
  }

  uint64_t Finish() const noexcept {
    return hash_internal::Finalize(s0_, s1_, buffer_, buffered_, total_);
  }

  uint64_t total_bytes() const noexcept { return total_; }

 private:
  Hasher& UpdateLong(std::string_view bytes) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    size_t n = bytes.size();
    total_ += n;
    // A full buffer is absorbed only once more input arrives: the last block of the message
    // (possibly a full one) is always the one Finish() pads, so the block boundaries match
    // those of the one-shot form.
    if (buffered_ == hash_internal::kBlock) {
      Absorb(buffer_);
      buffered_ = 0;
    }
    if (buffered_ != 0) {
      size_t take = hash_internal::kBlock - buffered_;
      if (take > n) take = n;
      std::memcpy(buffer_ + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (n == 0) return *this;
      Absorb(buffer_);
      buffered_ = 0;
    }
    while (n > hash_internal::kBlock) {
      Absorb(p);
      p += hash_internal::kBlock;
      n -= hash_internal::kBlock;
    }
    std::memcpy(buffer_, p, n);
    buffered_ = n;
    return *this;
  }

  void Absorb(const unsigned char* b) noexcept { hash_internal::Absorb(s0_, s1_, b); }

  uint64_t s0_;
  uint64_t s1_;
  uint64_t total_ = 0;
  size_t buffered_ = 0;
  unsigned char buffer_[hash_internal::kBlock];
};

// The 64-bit hash of `bytes` under `seed`. Equal to the incremental form above.
inline uint64_t HashBytes(std::string_view bytes, uint64_t seed = 0) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  uint64_t s0 = seed ^ hash_internal::kK0, s1 = std::rotl(seed, 32) ^ hash_internal::kK2;
  for (; n > hash_internal::kBlock; n -= hash_internal::kBlock, p += hash_internal::kBlock)
    hash_internal::Absorb(s0, s1, p);
  return hash_internal::Finalize(s0, s1, p, n, bytes.size());
}

// Mixes two 64-bit values into one, order-sensitive.
inline uint64_t HashCombine(uint64_t a, uint64_t b) noexcept {
  return hash_internal::Fold(a ^ hash_internal::kK2, b ^ hash_internal::kK5);
}

// The hash that identifies one execution's exact parameters: the statement's fingerprint
// seeds a hash of the caller's serialisation of the bound values. Two executions with equal
// results ran the same statement with (almost certainly) the same parameters, which is how
// repeated identical queries are detected without exporting a single parameter value.
inline uint64_t ParameterHash(uint64_t fingerprint, std::string_view serialized_params) noexcept {
  return HashBytes(serialized_params, fingerprint ^ hash_internal::kK4);
}

}  // namespace djtrace::sql
