// Hand-written protobuf encoder for ExportTraceServiceRequest.
//
// What is written, field by field, is what opentelemetry-sdk 1.45's encoder
// (opentelemetry-exporter-otlp-proto-common, trace_encoder) sets, serialized as protobuf does it
// (fields in number order, proto3 defaults left out), so that the bytes are identical to the
// SDK's for the same spans:
// - ResourceSpans: resource (always present, attributes only), scope_spans, schema_url.
// - ScopeSpans: scope (always present: name, version, attributes), spans, and the scope's
//   schema_url.
// - Span: every field; parent_span_id only for a child; status always present, even when
//   unset; flags keeps only the SpanFlags is-remote bits 0x100/0x200 (the SDK does not put the
//   W3C trace flags in bits 0-7).
// - Link: trace_id, span_id, attributes, dropped_attributes_count, flags (bits 0x300 only). The
//   SDK leaves the link's trace_state out, so we do too.
// - AnyValue: the oneof member is always written, so false, 0, 0.0 and "" are sent; arrays
//   (empty ones too) as array_value.
// One addition: strings that are not well-formed UTF-8, which the SDK cannot hold, are repaired
// (U+FFFD), since receivers reject the whole request otherwise.
//
// Two passes over the same walk: the first computes every nested message's length and records
// them in walk order; the second writes into the output, already sized, taking the lengths in
// the same order. No allocation per field; the working buffers live per thread.
#include "export/otlp_proto.h"

#include <bit>
#include <cstring>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

#include "export/otlp_grouping.h"
#include "export/utf8.h"

namespace djtrace {
namespace {

// Wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

// Field numbers (opentelemetry-proto v1).
namespace request {
constexpr uint32_t kResourceSpans = 1;
}
namespace resource_spans {
constexpr uint32_t kResource = 1;
constexpr uint32_t kScopeSpans = 2;
constexpr uint32_t kSchemaUrl = 3;
}  // namespace resource_spans
namespace resource {
constexpr uint32_t kAttributes = 1;
}
namespace scope_spans {
constexpr uint32_t kScope = 1;
constexpr uint32_t kSpans = 2;
constexpr uint32_t kSchemaUrl = 3;
}  // namespace scope_spans
namespace scope {
constexpr uint32_t kName = 1;
constexpr uint32_t kVersion = 2;
constexpr uint32_t kAttributes = 3;
}  // namespace scope
namespace span {
constexpr uint32_t kTraceId = 1;
constexpr uint32_t kSpanId = 2;
constexpr uint32_t kTraceState = 3;
constexpr uint32_t kParentSpanId = 4;
constexpr uint32_t kName = 5;
constexpr uint32_t kKind = 6;
constexpr uint32_t kStartTimeUnixNano = 7;
constexpr uint32_t kEndTimeUnixNano = 8;
constexpr uint32_t kAttributes = 9;
constexpr uint32_t kDroppedAttributesCount = 10;
constexpr uint32_t kEvents = 11;
constexpr uint32_t kDroppedEventsCount = 12;
constexpr uint32_t kLinks = 13;
constexpr uint32_t kDroppedLinksCount = 14;
constexpr uint32_t kStatus = 15;
constexpr uint32_t kFlags = 16;
}  // namespace span
namespace event {
constexpr uint32_t kTimeUnixNano = 1;
constexpr uint32_t kName = 2;
constexpr uint32_t kAttributes = 3;
constexpr uint32_t kDroppedAttributesCount = 4;
}  // namespace event
namespace link {
constexpr uint32_t kTraceId = 1;
constexpr uint32_t kSpanId = 2;
constexpr uint32_t kAttributes = 4;
constexpr uint32_t kDroppedAttributesCount = 5;
constexpr uint32_t kFlags = 6;
}  // namespace link
namespace status {
constexpr uint32_t kMessage = 2;
constexpr uint32_t kCode = 3;
}  // namespace status
namespace key_value {
constexpr uint32_t kKey = 1;
constexpr uint32_t kValue = 2;
}  // namespace key_value
namespace any_value {
constexpr uint32_t kStringValue = 1;
constexpr uint32_t kBoolValue = 2;
constexpr uint32_t kIntValue = 3;
constexpr uint32_t kDoubleValue = 4;
constexpr uint32_t kArrayValue = 5;
}  // namespace any_value
namespace array_value {
constexpr uint32_t kValues = 1;
}

// The SpanFlags bits the SDK sets: CONTEXT_HAS_IS_REMOTE (0x100) and CONTEXT_IS_REMOTE (0x200).
constexpr uint32_t kSpanFlagsIsRemoteMask = 0x300;

constexpr size_t VarintSize(uint64_t v) {
  // 1 byte per started group of 7 bits; v | 1 makes 0 take one byte.
  return static_cast<size_t>((64 - std::countl_zero(v | 1) + 6) / 7);
}
constexpr size_t TagSize(uint32_t field) { return field < 16 ? 1 : 2; }
constexpr size_t LengthDelimitedSize(uint32_t field, size_t length) {
  return TagSize(field) + VarintSize(length) + length;
}

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

class ProtoEncoder {
 public:
  void Encode(std::span<const SpanData* const> spans, std::string& out) {
    const size_t total = Measure(spans);
    const size_t old_size = out.size();
    out.resize(old_size + total);
    Write(out.data() + old_size);
  }

  size_t EncodeReusing(std::span<const SpanData* const> spans, std::string& buffer) {
    const size_t total = Measure(spans);
    if (buffer.size() < total) buffer.resize(total);
    Write(buffer.data());
    return total;
  }

  // `attributes` alone, as repeated KeyValue fields `field` (the bytes a message holding them
  // would have for them).
  void EncodeAttributes(uint32_t field, const Attributes& attributes, std::string& out) {
    sizes_.clear();
    needs_repair_ = false;
    out.resize(SizeAttributes(field, attributes));
    p_ = out.data();
    next_size_ = 0;
    WriteAttributes(field, attributes);
  }

 private:
  // First pass: the request's size (and every nested message's, in sizes_).
  size_t Measure(std::span<const SpanData* const> spans) {
    grouping_.Build(spans);
    shared_.clear();
    sizes_.clear();
    needs_repair_ = false;
    size_t total = 0;
    for (const auto& r : grouping_.resources()) {
      total += LengthDelimitedSize(request::kResourceSpans, SizeResourceSpans(r));
    }
    return total;
  }

  // Second pass: the bytes Measure counted, from `dst` on.
  void Write(char* dst) {
    p_ = dst;
    next_size_ = 0;
    for (const auto& r : grouping_.resources()) {
      WriteMessageHeader(request::kResourceSpans);
      WriteResourceSpans(r);
    }
  }

  // A span's shared attributes (SpanData::shared_attributes, not merged into its own): a block
  // that many spans of a batch point to, encoded at its first span and copied into the others.
  // They come first, where FlattenAttributes would put them: the bytes are the same.
  const std::string& SharedBytes(const Attributes& block) {
    auto it = shared_.find(&block);
    if (it != shared_.end()) return it->second;
    std::string bytes;
    ProtoEncoder block_encoder;
    block_encoder.EncodeAttributes(span::kAttributes, block, bytes);
    return shared_.emplace(&block, std::move(bytes)).first->second;
  }

  // ---- First pass: lengths. Each Size* of a message reserves its slot in sizes_ before its
  // children's, so the second pass finds them in the order it writes them.

  size_t Reserve() {
    sizes_.push_back(0);
    return sizes_.size() - 1;
  }
  size_t Record(size_t slot, size_t size) {
    sizes_[slot] = size;
    return size;
  }

  size_t StringSize(const std::string& s) {
    if (IsValidUtf8(s)) return s.size();
    needs_repair_ = true;
    return SanitizedUtf8Length(s);
  }
  // A proto3 string field: left out when empty.
  size_t StringFieldSize(uint32_t field, const std::string& s) {
    return s.empty() ? 0 : LengthDelimitedSize(field, StringSize(s));
  }
  static size_t VarintFieldSize(uint32_t field, uint64_t v) {
    return v == 0 ? 0 : TagSize(field) + VarintSize(v);
  }
  static size_t Fixed64FieldSize(uint32_t field, uint64_t v) {
    return v == 0 ? 0 : TagSize(field) + 8;
  }
  static size_t Fixed32FieldSize(uint32_t field, uint32_t v) {
    return v == 0 ? 0 : TagSize(field) + 4;
  }

  size_t SizeArrayValue(const AttrValue& value) {
    size_t slot = Reserve();
    size_t size = std::visit(
        [this](const auto& x) -> size_t {
          using T = std::decay_t<decltype(x)>;
          if constexpr (IsVector<T>::value) {
            using E = typename T::value_type;
            size_t n = 0;
            for (const auto& e : x) {
              size_t element;
              if constexpr (std::is_same_v<E, bool>) {
                element = 2;
              } else if constexpr (std::is_same_v<E, int64_t>) {
                element = 1 + VarintSize(static_cast<uint64_t>(e));
              } else if constexpr (std::is_same_v<E, double>) {
                element = 9;
              } else {
                element = LengthDelimitedSize(any_value::kStringValue, StringSize(e));
              }
              n += LengthDelimitedSize(array_value::kValues, element);
            }
            return n;
          } else {
            return 0;
          }
        },
        value);
    return Record(slot, size);
  }

  // AnyValue content. Scalars need no slot: their size is cheap to compute again.
  size_t SizeAnyValue(const AttrValue& value) {
    switch (value.index()) {
      case 0:  // bool
        return 2;
      case 1:  // int64
        return 1 + VarintSize(static_cast<uint64_t>(std::get<int64_t>(value)));
      case 2:  // double
        return 9;
      case 3:  // string: always written inside the oneof, even when empty
        return LengthDelimitedSize(any_value::kStringValue,
                                   StringSize(std::get<std::string>(value)));
      default:
        return LengthDelimitedSize(any_value::kArrayValue, SizeArrayValue(value));
    }
  }

  size_t SizeKeyValue(const Attribute& a) {
    size_t slot = Reserve();
    size_t size = StringFieldSize(key_value::kKey, a.key) +
                  LengthDelimitedSize(key_value::kValue, SizeAnyValue(a.value));
    return Record(slot, size);
  }

  size_t SizeAttributes(uint32_t field, const Attributes& attributes) {
    size_t size = 0;
    for (const Attribute& a : attributes) size += LengthDelimitedSize(field, SizeKeyValue(a));
    return size;
  }

  size_t SizeEvent(const Event& e) {
    size_t slot = Reserve();
    size_t size = Fixed64FieldSize(event::kTimeUnixNano, e.time_unix_nano) +
                  StringFieldSize(event::kName, e.name) +
                  SizeAttributes(event::kAttributes, e.attributes) +
                  VarintFieldSize(event::kDroppedAttributesCount, e.dropped_attributes_count);
    return Record(slot, size);
  }

  size_t SizeLink(const Link& l) {
    size_t slot = Reserve();
    size_t size = LengthDelimitedSize(link::kTraceId, 16) + LengthDelimitedSize(link::kSpanId, 8) +
                  SizeAttributes(link::kAttributes, l.attributes) +
                  VarintFieldSize(link::kDroppedAttributesCount, l.dropped_attributes_count) +
                  Fixed32FieldSize(link::kFlags, l.flags & kSpanFlagsIsRemoteMask);
    return Record(slot, size);
  }

  size_t SizeStatus(const SpanData& s) {
    return StringFieldSize(status::kMessage, s.status_message) +
           VarintFieldSize(status::kCode, static_cast<uint64_t>(s.status_code));
  }

  size_t SizeSpan(const SpanData& s) {
    size_t slot = Reserve();
    size_t size = LengthDelimitedSize(span::kTraceId, 16) + LengthDelimitedSize(span::kSpanId, 8) +
                  StringFieldSize(span::kTraceState, s.trace_state) +
                  (IsZero(s.parent_span_id) ? 0 : LengthDelimitedSize(span::kParentSpanId, 8)) +
                  StringFieldSize(span::kName, s.name) +
                  VarintFieldSize(span::kKind, static_cast<uint64_t>(s.kind)) +
                  Fixed64FieldSize(span::kStartTimeUnixNano, s.start_time_unix_nano) +
                  Fixed64FieldSize(span::kEndTimeUnixNano, s.end_time_unix_nano) +
                  (s.shared_attributes ? SharedBytes(*s.shared_attributes).size() : 0) +
                  SizeAttributes(span::kAttributes, s.attributes) +
                  VarintFieldSize(span::kDroppedAttributesCount, s.dropped_attributes_count);
    for (const Event& e : s.events) size += LengthDelimitedSize(span::kEvents, SizeEvent(e));
    size += VarintFieldSize(span::kDroppedEventsCount, s.dropped_events_count);
    for (const Link& l : s.links) size += LengthDelimitedSize(span::kLinks, SizeLink(l));
    size += VarintFieldSize(span::kDroppedLinksCount, s.dropped_links_count) +
            LengthDelimitedSize(span::kStatus, SizeStatus(s)) +
            Fixed32FieldSize(span::kFlags, s.flags & kSpanFlagsIsRemoteMask);
    return Record(slot, size);
  }

  size_t SizeScope(const InstrumentationScope* s) {
    if (s == nullptr) return 0;
    size_t slot = Reserve();
    size_t size = StringFieldSize(scope::kName, s->name) +
                  StringFieldSize(scope::kVersion, s->version) +
                  SizeAttributes(scope::kAttributes, s->attributes);
    return Record(slot, size);
  }

  size_t SizeScopeSpans(const SpanGrouping::ScopeGroup& g) {
    size_t slot = Reserve();
    size_t size = LengthDelimitedSize(scope_spans::kScope, SizeScope(g.scope));
    for (const SpanData* s : grouping_.spans(g)) {
      size += LengthDelimitedSize(scope_spans::kSpans, SizeSpan(*s));
    }
    if (g.scope) size += StringFieldSize(scope_spans::kSchemaUrl, g.scope->schema_url);
    return Record(slot, size);
  }

  size_t SizeResource(const Resource* r) {
    if (r == nullptr) return 0;
    size_t slot = Reserve();
    return Record(slot, SizeAttributes(resource::kAttributes, r->attributes));
  }

  size_t SizeResourceSpans(const SpanGrouping::ResourceGroup& g) {
    size_t slot = Reserve();
    size_t size = LengthDelimitedSize(resource_spans::kResource, SizeResource(g.resource));
    for (const auto& s : grouping_.scopes(g)) {
      size += LengthDelimitedSize(resource_spans::kScopeSpans, SizeScopeSpans(s));
    }
    if (g.resource) size += StringFieldSize(resource_spans::kSchemaUrl, g.resource->schema_url);
    return Record(slot, size);
  }

  // ---- Second pass: bytes.

  void WriteVarint(uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
  }
  void WriteTag(uint32_t field, uint32_t wire_type) { WriteVarint(field << 3 | wire_type); }
  void WriteFixed64(uint64_t v) {
    for (int i = 0; i < 8; ++i) *p_++ = static_cast<char>(v >> (8 * i));
  }
  void WriteFixed32(uint32_t v) {
    for (int i = 0; i < 4; ++i) *p_++ = static_cast<char>(v >> (8 * i));
  }
  void WriteBytes(const void* data, size_t n) {
    std::memcpy(p_, data, n);
    p_ += n;
  }
  // Tag and length of a nested message whose length the first pass recorded.
  void WriteMessageHeader(uint32_t field) {
    WriteTag(field, kLengthDelimited);
    WriteVarint(sizes_[next_size_++]);
  }
  void WriteString(uint32_t field, const std::string& s) {
    WriteTag(field, kLengthDelimited);
    if (!needs_repair_) {
      WriteVarint(s.size());
      WriteBytes(s.data(), s.size());
    } else {
      WriteVarint(SanitizedUtf8Length(s));
      p_ = WriteSanitizedUtf8(s, p_);
    }
  }
  void WriteStringField(uint32_t field, const std::string& s) {
    if (!s.empty()) WriteString(field, s);
  }
  void WriteVarintField(uint32_t field, uint64_t v) {
    if (v == 0) return;
    WriteTag(field, kVarint);
    WriteVarint(v);
  }
  void WriteFixed64Field(uint32_t field, uint64_t v) {
    if (v == 0) return;
    WriteTag(field, kFixed64);
    WriteFixed64(v);
  }
  void WriteFixed32Field(uint32_t field, uint32_t v) {
    if (v == 0) return;
    WriteTag(field, kFixed32);
    WriteFixed32(v);
  }
  template <size_t N>
  void WriteIdField(uint32_t field, const std::array<uint8_t, N>& id) {
    WriteTag(field, kLengthDelimited);
    WriteVarint(N);
    WriteBytes(id.data(), N);
  }

  void WriteAnyValueContent(const AttrValue& value) {
    std::visit(
        [this](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool>) {
            WriteTag(any_value::kBoolValue, kVarint);
            *p_++ = x ? 1 : 0;
          } else if constexpr (std::is_same_v<T, int64_t>) {
            WriteTag(any_value::kIntValue, kVarint);
            WriteVarint(static_cast<uint64_t>(x));
          } else if constexpr (std::is_same_v<T, double>) {
            WriteTag(any_value::kDoubleValue, kFixed64);
            WriteFixed64(std::bit_cast<uint64_t>(x));
          } else if constexpr (std::is_same_v<T, std::string>) {
            WriteString(any_value::kStringValue, x);
          } else {
            WriteMessageHeader(any_value::kArrayValue);
            using E = typename T::value_type;
            for (const auto& e : x) {
              WriteTag(array_value::kValues, kLengthDelimited);
              if constexpr (std::is_same_v<E, bool>) {
                *p_++ = 2;
                WriteTag(any_value::kBoolValue, kVarint);
                *p_++ = e ? 1 : 0;
              } else if constexpr (std::is_same_v<E, int64_t>) {
                uint64_t v = static_cast<uint64_t>(e);
                WriteVarint(1 + VarintSize(v));
                WriteTag(any_value::kIntValue, kVarint);
                WriteVarint(v);
              } else if constexpr (std::is_same_v<E, double>) {
                *p_++ = 9;
                WriteTag(any_value::kDoubleValue, kFixed64);
                WriteFixed64(std::bit_cast<uint64_t>(e));
              } else {
                size_t length = needs_repair_ ? SanitizedUtf8Length(e) : e.size();
                WriteVarint(LengthDelimitedSize(any_value::kStringValue, length));
                WriteString(any_value::kStringValue, e);
              }
            }
          }
        },
        value);
  }

  void WriteAttributes(uint32_t field, const Attributes& attributes) {
    for (const Attribute& a : attributes) {
      WriteMessageHeader(field);
      WriteStringField(key_value::kKey, a.key);
      WriteTag(key_value::kValue, kLengthDelimited);
      // The AnyValue's length: recomputed for scalars, from the recorded ArrayValue length for
      // arrays (SizeAnyValue's arithmetic, without walking the elements again).
      const AttrValue& v = a.value;
      size_t length;
      if (v.index() >= 4) {
        length = LengthDelimitedSize(any_value::kArrayValue, sizes_[next_size_]);
      } else if (v.index() == 3) {
        const std::string& s = std::get<std::string>(v);
        length = LengthDelimitedSize(any_value::kStringValue,
                                     needs_repair_ ? SanitizedUtf8Length(s) : s.size());
      } else if (v.index() == 1) {
        length = 1 + VarintSize(static_cast<uint64_t>(std::get<int64_t>(v)));
      } else {
        length = v.index() == 0 ? 2 : 9;
      }
      WriteVarint(length);
      WriteAnyValueContent(v);
    }
  }

  void WriteEvent(const Event& e) {
    WriteFixed64Field(event::kTimeUnixNano, e.time_unix_nano);
    WriteStringField(event::kName, e.name);
    WriteAttributes(event::kAttributes, e.attributes);
    WriteVarintField(event::kDroppedAttributesCount, e.dropped_attributes_count);
  }

  void WriteLink(const Link& l) {
    WriteIdField(link::kTraceId, l.trace_id);
    WriteIdField(link::kSpanId, l.span_id);
    WriteAttributes(link::kAttributes, l.attributes);
    WriteVarintField(link::kDroppedAttributesCount, l.dropped_attributes_count);
    WriteFixed32Field(link::kFlags, l.flags & kSpanFlagsIsRemoteMask);
  }

  void WriteSpan(const SpanData& s) {
    WriteIdField(span::kTraceId, s.trace_id);
    WriteIdField(span::kSpanId, s.span_id);
    WriteStringField(span::kTraceState, s.trace_state);
    if (!IsZero(s.parent_span_id)) WriteIdField(span::kParentSpanId, s.parent_span_id);
    WriteStringField(span::kName, s.name);
    WriteVarintField(span::kKind, static_cast<uint64_t>(s.kind));
    WriteFixed64Field(span::kStartTimeUnixNano, s.start_time_unix_nano);
    WriteFixed64Field(span::kEndTimeUnixNano, s.end_time_unix_nano);
    if (s.shared_attributes) {
      const std::string& shared = SharedBytes(*s.shared_attributes);
      WriteBytes(shared.data(), shared.size());
    }
    WriteAttributes(span::kAttributes, s.attributes);
    WriteVarintField(span::kDroppedAttributesCount, s.dropped_attributes_count);
    for (const Event& e : s.events) {
      WriteMessageHeader(span::kEvents);
      WriteEvent(e);
    }
    WriteVarintField(span::kDroppedEventsCount, s.dropped_events_count);
    for (const Link& l : s.links) {
      WriteMessageHeader(span::kLinks);
      WriteLink(l);
    }
    WriteVarintField(span::kDroppedLinksCount, s.dropped_links_count);
    WriteTag(span::kStatus, kLengthDelimited);
    WriteVarint(SizeStatusForWrite(s));
    WriteStringField(status::kMessage, s.status_message);
    WriteVarintField(status::kCode, static_cast<uint64_t>(s.status_code));
    WriteFixed32Field(span::kFlags, s.flags & kSpanFlagsIsRemoteMask);
  }

  size_t SizeStatusForWrite(const SpanData& s) const {
    size_t message = s.status_message.empty()
                         ? 0
                         : LengthDelimitedSize(status::kMessage,
                                               needs_repair_ ? SanitizedUtf8Length(s.status_message)
                                                             : s.status_message.size());
    return message + VarintFieldSize(status::kCode, static_cast<uint64_t>(s.status_code));
  }

  void WriteScopeSpans(const SpanGrouping::ScopeGroup& g) {
    if (g.scope) {
      WriteMessageHeader(scope_spans::kScope);
      WriteStringField(scope::kName, g.scope->name);
      WriteStringField(scope::kVersion, g.scope->version);
      WriteAttributes(scope::kAttributes, g.scope->attributes);
    } else {
      WriteTag(scope_spans::kScope, kLengthDelimited);  // present and empty, as the SDK sends
      *p_++ = 0;
    }
    for (const SpanData* s : grouping_.spans(g)) {
      WriteMessageHeader(scope_spans::kSpans);
      WriteSpan(*s);
    }
    if (g.scope) WriteStringField(scope_spans::kSchemaUrl, g.scope->schema_url);
  }

  void WriteResourceSpans(const SpanGrouping::ResourceGroup& g) {
    if (g.resource) {
      WriteMessageHeader(resource_spans::kResource);
      WriteAttributes(resource::kAttributes, g.resource->attributes);
    } else {
      WriteTag(resource_spans::kResource, kLengthDelimited);
      *p_++ = 0;
    }
    for (const auto& s : grouping_.scopes(g)) {
      WriteMessageHeader(resource_spans::kScopeSpans);
      WriteScopeSpans(s);
    }
    if (g.resource) WriteStringField(resource_spans::kSchemaUrl, g.resource->schema_url);
  }

  SpanGrouping grouping_;
  std::unordered_map<const Attributes*, std::string> shared_;  // SharedBytes, for one batch
  std::vector<size_t> sizes_;  // nested message lengths, in walk order
  size_t next_size_ = 0;
  bool needs_repair_ = false;  // some string is not well-formed UTF-8
  char* p_ = nullptr;
};

}  // namespace

namespace {

// This thread's encoder, found once per encoded batch. Were the thread_local used directly, the
// inlined encoder would look its address up (a call, in a shared library) at every field.
[[gnu::noinline]] ProtoEncoder& ThreadEncoder() {
  thread_local ProtoEncoder encoder;
  return encoder;
}

}  // namespace

void EncodeExportTraceServiceRequest(std::span<const SpanData* const> spans, std::string& out) {
  ThreadEncoder().Encode(spans, out);
}

size_t EncodeExportTraceServiceRequestReusing(std::span<const SpanData* const> spans,
                                              std::string& buffer) {
  return ThreadEncoder().EncodeReusing(spans, buffer);
}

}  // namespace djtrace
