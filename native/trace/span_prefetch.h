// Fetching a span's memory ahead of its use, for the two places that touch spans last written on
// the other core: the span pool, which clears a returned span on the application thread, and the
// batch processor, which reads a finished span on the export worker. Both walk a list of spans
// and fetch the next ones in stages: the object, then the buffers its fields point to, then what
// its attributes own.
#pragma once

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "trace/span_data.h"

namespace djtrace::prefetch {

enum class Intent { kRead, kWrite };

#if defined(__x86_64__)
// PREFETCHW takes the line for writing. A plain prefetch leaves the other core a copy, and the
// first write then waits for that copy to be invalidated, which costs as much as the miss. Not
// every x86-64 processor has it (CPUID 0x80000001, ECX bit 8), hence the check.
inline const bool kHasPrefetchw = [] {
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 8));
}();
#endif

template <Intent kIntent>
inline void Line(const void* p) {
  if constexpr (kIntent == Intent::kWrite) {
#if defined(__x86_64__)
    if (kHasPrefetchw) {
      asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
      return;
    }
#endif
    __builtin_prefetch(p, 1, 3);
  } else {
    __builtin_prefetch(p, 0, 3);
  }
}

template <Intent kIntent>
inline void Block(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) Line<kIntent>(c + off);
}

// Whether the string's characters live in a heap block rather than in the string itself
// (libstdc++'s in-object buffer holds 15).
inline bool OnHeap(const std::string& s) { return s.capacity() > 15; }

// Stage 1: the object (its fields are read to find the rest).
template <Intent kIntent>
inline void Object(const SpanData& span) {
  Block<kIntent>(&span, sizeof(SpanData));
}

// Stage 2's common part: the attribute list (of a long one, its start).
template <Intent kIntent>
inline void AttributeList(const SpanData& span) {
  constexpr size_t kMaxBytes = 16 * 64;  // most attribute lists
  Block<kIntent>(span.attributes.data(),
                 std::min(kMaxBytes, span.attributes.size() * sizeof(Attribute)));
}

}  // namespace djtrace::prefetch
