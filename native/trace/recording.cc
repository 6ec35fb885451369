#include "trace/recording.h"

#include <utility>

namespace djtrace {

void TruncateUtf8(std::string& s, uint32_t limit) {
  if (limit == SpanLimits::kUnlimited || s.size() <= limit) return;
  // Walk code points; continuation bytes (10xxxxxx) do not start a character.
  uint32_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80) {
      if (chars == limit) {
        s.resize(i);
        return;
      }
      ++chars;
    }
  }
}

void ApplyLengthLimit(AttrValue& value, uint32_t limit) {
  if (limit == SpanLimits::kUnlimited) return;
  if (auto* s = std::get_if<std::string>(&value)) {
    TruncateUtf8(*s, limit);
  } else if (auto* v = std::get_if<std::vector<std::string>>(&value)) {
    for (auto& item : *v) TruncateUtf8(item, limit);
  }
}

bool SetAttribute(Attributes& attrs, uint32_t& dropped, std::string_view key, AttrValue value,
                  uint32_t max_count, uint32_t max_length) {
  if (max_count == 0) {
    ++dropped;
    return false;
  }
  ApplyLengthLimit(value, max_length);
  for (size_t i = 0; i < attrs.size(); ++i) {
    if (attrs[i].key == key) {
      // Replace and move to the end, as the official SDK's ordered dict does.
      Attribute moved{std::move(attrs[i].key), std::move(value)};
      attrs.erase(attrs.begin() + static_cast<std::ptrdiff_t>(i));
      attrs.push_back(std::move(moved));
      return true;
    }
  }
  if (attrs.size() >= max_count) {
    attrs.erase(attrs.begin());
    ++dropped;
  }
  attrs.push_back(Attribute{std::string(key), std::move(value)});
  return true;
}

void AddEvent(SpanData& span, Event event, const SpanLimits& limits) {
  if (limits.max_events == 0) {
    ++span.dropped_events_count;
    return;
  }
  if (span.events.size() >= limits.max_events) {
    span.events.erase(span.events.begin());
    ++span.dropped_events_count;
  }
  span.events.push_back(std::move(event));
}

void AddLink(SpanData& span, Link link, const SpanLimits& limits) {
  if (limits.max_links == 0) {
    ++span.dropped_links_count;
    return;
  }
  if (span.links.size() >= limits.max_links) {
    span.links.erase(span.links.begin());
    ++span.dropped_links_count;
  }
  span.links.push_back(std::move(link));
}

void SetStatus(SpanData& span, StatusCode code, std::string_view description) {
  if (span.status_code == StatusCode::kOk) return;
  if (code == StatusCode::kUnset) return;
  span.status_code = code;
  if (code == StatusCode::kError) {
    span.status_message.assign(description);
  } else {
    span.status_message.clear();
  }
}

}  // namespace djtrace
