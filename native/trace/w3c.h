// W3C Trace Context: the traceparent and tracestate headers. Parsing is strict where the
// specification is (a malformed header is ignored, never half-used) and lenient where it asks
// for forward compatibility (higher versions with extra fields).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace {

struct Traceparent {
  TraceId trace_id{};
  SpanId span_id{};
  uint8_t flags = 0;
};

// Longest headers accepted, as opentelemetry-api's TraceContextTextMapPropagator has them.
inline constexpr size_t kMaxTraceparentLength = 512;
inline constexpr size_t kMaxTracestateLength = 8192;

// Returns false for anything the specification says to ignore (bad length or characters,
// version ff, all-zero ids, extra data on version 00, more than kMaxTraceparentLength bytes).
bool ParseTraceparent(std::string_view header, Traceparent& out) noexcept;
// "00-<32 hex>-<16 hex>-<2 hex>"
std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags);

// Checks a tracestate header value: at most 32 list members of valid key=value with distinct
// keys, at most kMaxTracestateLength bytes; returns the normalised value (optional whitespace
// removed, empty members dropped), or false with `out` empty if invalid.
bool NormalizeTracestate(std::string_view header, std::string& out);

std::string ToHex(const uint8_t* data, size_t n);
bool FromHex(std::string_view hex, uint8_t* out, size_t n) noexcept;

}  // namespace djtrace
