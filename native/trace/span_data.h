// The span model shared by every native unit: what a finished span holds on its way from the
// application thread to the exporter. Plain data, no Python, no locking.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace djtrace {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

inline bool IsZero(const TraceId& id) {
  for (uint8_t b : id)
    if (b) return false;
  return true;
}
inline bool IsZero(const SpanId& id) {
  for (uint8_t b : id)
    if (b) return false;
  return true;
}

// Every OpenTelemetry attribute type: scalars and homogeneous arrays. An empty array keeps the
// element type it was declared with (OTLP encodes it as an empty ArrayValue either way).
using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<bool>,
                               std::vector<int64_t>, std::vector<double>, std::vector<std::string>>;

struct Attribute {
  std::string key;
  AttrValue value;
};
using Attributes = std::vector<Attribute>;

// Span kinds, numbered as in OTLP (opentelemetry.proto.trace.v1.Span.SpanKind).
enum class SpanKind : uint8_t {
  kUnspecified = 0,
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};

// Status codes, numbered as in OTLP (Status.StatusCode).
enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

struct Event {
  std::string name;
  uint64_t time_unix_nano = 0;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

struct Link {
  TraceId trace_id{};
  SpanId span_id{};
  std::string trace_state;
  // W3C trace flags in bits 0-7, plus the OTLP SpanFlags is-remote bits (0x100 has, 0x200 is).
  uint32_t flags = 0;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

struct InstrumentationScope {
  std::string name;
  std::string version;
  std::string schema_url;
  Attributes attributes;
};

struct Resource {
  Attributes attributes;
  std::string schema_url;
};

struct SpanData {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero for a root span
  std::string trace_state;  // W3C tracestate header value, as received or set
  // Bits 0-7: W3C trace flags (0x01 sampled). Bits 8-9: OTLP SpanFlags for the parent
  // (0x100: the is-remote bit is known, 0x200: the parent is remote), as the official SDK sets.
  uint32_t flags = 0;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  uint64_t start_time_unix_nano = 0;
  uint64_t end_time_unix_nano = 0;
  Attributes attributes;
  // Attributes that many spans carry unchanged (a database statement's on one connection from
  // one call site), referenced instead of copied on the application's thread. They come before
  // `attributes` and share no key with them; FlattenAttributes merges them in, which the
  // processors do before a span is transformed or exported.
  std::shared_ptr<const Attributes> shared_attributes;
  uint32_t dropped_attributes_count = 0;
  std::vector<Event> events;
  uint32_t dropped_events_count = 0;
  std::vector<Link> links;
  uint32_t dropped_links_count = 0;
  StatusCode status_code = StatusCode::kUnset;
  std::string status_message;
  std::shared_ptr<const InstrumentationScope> scope;
  std::shared_ptr<const Resource> resource;
};

using SpanPtr = std::unique_ptr<SpanData>;

// Moves a span's shared attributes into its own list, ahead of the others (a no-op without).
inline void FlattenAttributes(SpanData& span) {
  if (!span.shared_attributes) return;
  span.attributes.insert(span.attributes.begin(), span.shared_attributes->begin(),
                         span.shared_attributes->end());
  span.shared_attributes.reset();
}

}  // namespace djtrace
