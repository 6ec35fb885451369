// Wall-clock time in nanoseconds since the Unix epoch, as OpenTelemetry timestamps are.
#pragma once

#include <cstdint>
#include <ctime>

namespace djtrace {

inline uint64_t NowUnixNano() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace djtrace
