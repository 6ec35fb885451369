// OTLP/JSON: the same message content as the protobuf encoder (otlp_proto.cc, same grouping and
// the same fields present), written in the protobuf JSON mapping with OTLP's rules: field names
// in lowerCamelCase, trace and span ids as lowercase hex (not base64), enums as integers,
// 64-bit integers as decimal strings, fields at their proto3 default left out, fields in field
// number order. This is what the OpenTelemetry Collector's file exporter writes and its
// otlpjsonfile receiver reads.
#include "export/otlp_json.h"

#include <charconv>
#include <type_traits>
#include <variant>

#include "export/json_writer.h"
#include "export/otlp_grouping.h"

namespace djtrace {
namespace {

// The same bits as the protobuf encoder keeps (see otlp_proto.cc).
constexpr uint32_t kSpanFlagsIsRemoteMask = 0x300;

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// One JSON object being written: opens on its first member, so an object with no members
// comes out as {}.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) {}
  void Key(std::string_view key) {
    out_.append(first_ ? "{\"" : ",\"");
    first_ = false;
    out_.append(key);
    out_.append("\":");
  }
  void End() { out_.append(first_ ? "{}" : "}"); }

 private:
  std::string& out_;
  bool first_ = true;
};

void AppendUnsigned(uint64_t v, std::string& out) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  out.append(buffer, result.ptr);
}
void AppendSigned(int64_t v, std::string& out) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  out.append(buffer, result.ptr);
}

class JsonEncoder {
 public:
  explicit JsonEncoder(std::string& out) : out_(out) {}

  void Encode(const SpanGrouping& grouping) {
    JsonObject request(out_);
    bool first = true;
    for (const auto& r : grouping.resources()) {
      if (first) request.Key("resourceSpans");
      out_.push_back(first ? '[' : ',');
      first = false;
      WriteResourceSpans(grouping, r);
    }
    if (!first) out_.push_back(']');
    request.End();
  }

 private:
  void StringMember(JsonObject& object, std::string_view key, const std::string& value) {
    if (value.empty()) return;
    object.Key(key);
    AppendJsonString(value, out_);
  }
  // uint32 fields are JSON numbers.
  void Uint32Member(JsonObject& object, std::string_view key, uint32_t value) {
    if (value == 0) return;
    object.Key(key);
    AppendUnsigned(value, out_);
  }
  // 64-bit fields are JSON strings.
  void Uint64Member(JsonObject& object, std::string_view key, uint64_t value) {
    if (value == 0) return;
    object.Key(key);
    out_.push_back('"');
    AppendUnsigned(value, out_);
    out_.push_back('"');
  }
  template <size_t N>
  void IdMember(JsonObject& object, std::string_view key, const std::array<uint8_t, N>& id) {
    object.Key(key);
    out_.push_back('"');
    AppendHex(id.data(), N, out_);
    out_.push_back('"');
  }

  template <class E>
  void WriteScalarAnyValue(const E& x) {
    JsonObject value(out_);
    if constexpr (std::is_same_v<E, bool>) {
      value.Key("boolValue");
      out_.append(x ? "true" : "false");
    } else if constexpr (std::is_same_v<E, int64_t>) {
      value.Key("intValue");
      out_.push_back('"');
      AppendSigned(x, out_);
      out_.push_back('"');
    } else if constexpr (std::is_same_v<E, double>) {
      value.Key("doubleValue");
      AppendJsonDouble(x, out_);
    } else {
      value.Key("stringValue");
      AppendJsonString(x, out_);
    }
    value.End();
  }

  void WriteAnyValue(const AttrValue& v) {
    std::visit(
        [this](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (IsVector<T>::value) {
            JsonObject value(out_);
            value.Key("arrayValue");
            JsonObject array(out_);
            if (!x.empty()) {
              array.Key("values");
              out_.push_back('[');
              bool first = true;
              for (const auto& e : x) {
                if (!first) out_.push_back(',');
                first = false;
                WriteScalarAnyValue(static_cast<typename T::value_type>(e));
              }
              out_.push_back(']');
            }
            array.End();
            value.End();
          } else {
            WriteScalarAnyValue(x);
          }
        },
        v);
  }

  void AttributesMember(JsonObject& object, const Attributes& attributes) {
    if (attributes.empty()) return;
    object.Key("attributes");
    out_.push_back('[');
    for (size_t i = 0; i < attributes.size(); ++i) {
      if (i) out_.push_back(',');
      JsonObject kv(out_);
      StringMember(kv, "key", attributes[i].key);
      kv.Key("value");
      WriteAnyValue(attributes[i].value);
      kv.End();
    }
    out_.push_back(']');
  }

  void WriteEvent(const Event& e) {
    JsonObject object(out_);
    Uint64Member(object, "timeUnixNano", e.time_unix_nano);
    StringMember(object, "name", e.name);
    AttributesMember(object, e.attributes);
    Uint32Member(object, "droppedAttributesCount", e.dropped_attributes_count);
    object.End();
  }

  void WriteLink(const Link& l) {
    JsonObject object(out_);
    IdMember(object, "traceId", l.trace_id);
    IdMember(object, "spanId", l.span_id);
    AttributesMember(object, l.attributes);
    Uint32Member(object, "droppedAttributesCount", l.dropped_attributes_count);
    Uint32Member(object, "flags", l.flags & kSpanFlagsIsRemoteMask);
    object.End();
  }

  void WriteSpan(const SpanData& s) {
    JsonObject object(out_);
    IdMember(object, "traceId", s.trace_id);
    IdMember(object, "spanId", s.span_id);
    StringMember(object, "traceState", s.trace_state);
    if (!IsZero(s.parent_span_id)) IdMember(object, "parentSpanId", s.parent_span_id);
    StringMember(object, "name", s.name);
    Uint32Member(object, "kind", static_cast<uint32_t>(s.kind));
    Uint64Member(object, "startTimeUnixNano", s.start_time_unix_nano);
    Uint64Member(object, "endTimeUnixNano", s.end_time_unix_nano);
    AttributesMember(object, s.attributes);
    Uint32Member(object, "droppedAttributesCount", s.dropped_attributes_count);
    if (!s.events.empty()) {
      object.Key("events");
      out_.push_back('[');
      for (size_t i = 0; i < s.events.size(); ++i) {
        if (i) out_.push_back(',');
        WriteEvent(s.events[i]);
      }
      out_.push_back(']');
    }
    Uint32Member(object, "droppedEventsCount", s.dropped_events_count);
    if (!s.links.empty()) {
      object.Key("links");
      out_.push_back('[');
      for (size_t i = 0; i < s.links.size(); ++i) {
        if (i) out_.push_back(',');
        WriteLink(s.links[i]);
      }
      out_.push_back(']');
    }
    Uint32Member(object, "droppedLinksCount", s.dropped_links_count);
    object.Key("status");
    JsonObject status(out_);
    StringMember(status, "message", s.status_message);
    Uint32Member(status, "code", static_cast<uint32_t>(s.status_code));
    status.End();
    Uint32Member(object, "flags", s.flags & kSpanFlagsIsRemoteMask);
    object.End();
  }

  void WriteScopeSpans(const SpanGrouping& grouping, const SpanGrouping::ScopeGroup& g) {
    JsonObject object(out_);
    object.Key("scope");
    JsonObject scope(out_);
    if (g.scope) {
      StringMember(scope, "name", g.scope->name);
      StringMember(scope, "version", g.scope->version);
      AttributesMember(scope, g.scope->attributes);
    }
    scope.End();
    auto spans = grouping.spans(g);
    if (!spans.empty()) {
      object.Key("spans");
      out_.push_back('[');
      for (size_t i = 0; i < spans.size(); ++i) {
        if (i) out_.push_back(',');
        WriteSpan(*spans[i]);
      }
      out_.push_back(']');
    }
    if (g.scope) StringMember(object, "schemaUrl", g.scope->schema_url);
    object.End();
  }

  void WriteResourceSpans(const SpanGrouping& grouping, const SpanGrouping::ResourceGroup& g) {
    JsonObject object(out_);
    object.Key("resource");
    JsonObject resource(out_);
    if (g.resource) AttributesMember(resource, g.resource->attributes);
    resource.End();
    auto scopes = grouping.scopes(g);
    if (!scopes.empty()) {
      object.Key("scopeSpans");
      out_.push_back('[');
      for (size_t i = 0; i < scopes.size(); ++i) {
        if (i) out_.push_back(',');
        WriteScopeSpans(grouping, scopes[i]);
      }
      out_.push_back(']');
    }
    if (g.resource) StringMember(object, "schemaUrl", g.resource->schema_url);
    object.End();
  }

  std::string& out_;
};

}  // namespace

namespace {

// This thread's grouping, found once per encoded batch (see ThreadEncoder in otlp_proto.cc).
[[gnu::noinline]] SpanGrouping& ThreadGrouping() {
  thread_local SpanGrouping grouping;
  return grouping;
}

}  // namespace

void EncodeExportTraceServiceRequestJson(std::span<const SpanData* const> spans, std::string& out) {
  SpanGrouping& grouping = ThreadGrouping();
  grouping.Build(spans);
  JsonEncoder(out).Encode(grouping);
}

}  // namespace djtrace
