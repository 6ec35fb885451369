// Random trace and span ids. Each thread draws from its own generator, seeded from the kernel;
// a fork (from Python or from C, as uWSGI does) reseeds every generator in the child, so parent
// and child never produce the same ids.
#pragma once

#include <cstdint>

#include "trace/span_data.h"

namespace djtrace {

TraceId NewTraceId() noexcept;  // never all zero
SpanId NewSpanId() noexcept;    // never all zero

// The low 64 bits of a trace id read as a big-endian integer (what ratio sampling compares).
inline uint64_t TraceIdLow64(const TraceId& id) noexcept {
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = (v << 8) | id[i];
  return v;
}

// Number of forks seen by this process (bumped in the child); lets other units notice a fork.
uint64_t ForkGeneration() noexcept;

}  // namespace djtrace
