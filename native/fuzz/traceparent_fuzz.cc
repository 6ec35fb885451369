// Fuzzes the W3C header parsers with the same bytes: neither may crash, a parsed traceparent
// must survive FormatTraceparent and parse back to the same ids and flags, and a normalised
// tracestate must be a fixed point of normalisation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "trace/w3c.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace djtrace;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  Traceparent parsed;
  if (ParseTraceparent(input, parsed)) {
    Check(size <= kMaxTraceparentLength);
    Check(!IsZero(parsed.trace_id) && !IsZero(parsed.span_id));
    const std::string formatted = FormatTraceparent(parsed.trace_id, parsed.span_id, parsed.flags);
    Check(formatted.size() == 55);
    Traceparent again;
    Check(ParseTraceparent(formatted, again));
    Check(again.trace_id == parsed.trace_id);
    Check(again.span_id == parsed.span_id);
    Check(again.flags == parsed.flags);
    Check(FormatTraceparent(again.trace_id, again.span_id, again.flags) == formatted);
  }

  std::string normalised = "stale";
  if (NormalizeTracestate(input, normalised)) {
    Check(normalised.size() <= input.size());
    std::string twice;
    Check(NormalizeTracestate(normalised, twice));
    Check(twice == normalised);
  } else {
    Check(normalised.empty());  // an invalid header is dropped whole
  }
  return 0;
}
