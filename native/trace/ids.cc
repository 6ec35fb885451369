#include "trace/ids.h"

#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>

namespace djtrace {
namespace {

std::atomic<uint64_t> g_fork_generation{0};

void OnForkChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

const bool g_atfork_registered = [] {
  pthread_atfork(nullptr, nullptr, &OnForkChild);
  return true;
}();

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256**: fast, 256 bits of state, good statistical quality for ids.
struct Xoshiro256 {
  uint64_t s[4];
  uint64_t generation = ~0ull;

  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  void Seed() {
    uint64_t seed[4] = {0, 0, 0, 0};
    ssize_t got = getrandom(seed, sizeof(seed), GRND_NONBLOCK);
    // Mix in pid, time and the state's address so that even without getrandom the streams of
    // two processes or threads differ.
    uint64_t mix = static_cast<uint64_t>(getpid()) ^
                   static_cast<uint64_t>(
                       std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
                   reinterpret_cast<uintptr_t>(this);
    if (got != static_cast<ssize_t>(sizeof(seed))) {
      for (auto& v : seed) v ^= SplitMix64(mix);
    }
    for (int i = 0; i < 4; ++i) s[i] = seed[i] ^ SplitMix64(mix);
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
    generation = g_fork_generation.load(std::memory_order_relaxed);
  }

  uint64_t Next() {
    if (generation != g_fork_generation.load(std::memory_order_relaxed)) Seed();
    const uint64_t result = Rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};

thread_local Xoshiro256 t_rng;

void Store64(uint8_t* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

}  // namespace

uint64_t ForkGeneration() noexcept {
  (void)g_atfork_registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

TraceId NewTraceId() noexcept {
  TraceId id;
  uint64_t hi, lo;
  do {
    hi = t_rng.Next();
    lo = t_rng.Next();
  } while ((hi | lo) == 0);
  Store64(id.data(), hi);
  Store64(id.data() + 8, lo);
  return id;
}

SpanId NewSpanId() noexcept {
  SpanId id;
  uint64_t v;
  do {
    v = t_rng.Next();
  } while (v == 0);
  Store64(id.data(), v);
  return id;
}

}  // namespace djtrace
