// Building a span while it is live: attributes, events, links and status under the span limits,
// with the same rules as opentelemetry-sdk (a repeated key replaces the value and moves to the
// end; a full attribute table evicts its oldest entry; strings are cut to the length limit).
// A span is built by one thread at a time; the Python layer serialises access under the GIL.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace {

struct SpanLimits {
  static constexpr uint32_t kUnlimited = std::numeric_limits<uint32_t>::max();
  uint32_t max_attributes = 128;             // OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT
  uint32_t max_span_attribute_length = kUnlimited;  // OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
  // Event and link attributes (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT), as the official SDK applies.
  uint32_t max_attribute_length = kUnlimited;
  uint32_t max_events = 128;                 // OTEL_SPAN_EVENT_COUNT_LIMIT
  uint32_t max_links = 128;                  // OTEL_SPAN_LINK_COUNT_LIMIT
  uint32_t max_event_attributes = 128;       // OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT
  uint32_t max_link_attributes = 128;        // OTEL_LINK_ATTRIBUTE_COUNT_LIMIT
};

// Truncates a string to at most `limit` characters (code points, as Python counts them).
void TruncateUtf8(std::string& s, uint32_t limit);
void ApplyLengthLimit(AttrValue& value, uint32_t limit);

// Sets `key` in `attrs` following the rules above. Returns false if it was dropped.
bool SetAttribute(Attributes& attrs, uint32_t& dropped, std::string_view key, AttrValue value,
                  uint32_t max_count, uint32_t max_length);

// Appends `attr` to an attribute list that is being built fresh (events, links, start
// attributes): same rules as SetAttribute.
inline bool AddAttribute(Attributes& attrs, uint32_t& dropped, std::string_view key,
                         AttrValue value, uint32_t max_count, uint32_t max_length) {
  return SetAttribute(attrs, dropped, key, std::move(value), max_count, max_length);
}

// Adds an event, dropping the oldest one once the limit is reached (as the official SDK's
// bounded deque does).
void AddEvent(SpanData& span, Event event, const SpanLimits& limits);
// Adds a link, dropping the oldest one once the limit is reached.
void AddLink(SpanData& span, Link link, const SpanLimits& limits);

// Status rules of the official SDK: OK is final; UNSET never overrides; a description is kept
// for ERROR only.
void SetStatus(SpanData& span, StatusCode code, std::string_view description);

}  // namespace djtrace
