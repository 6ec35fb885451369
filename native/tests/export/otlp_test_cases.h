// The spans of native/tests/data/gen_otlp_trace_vectors.py, built as SpanData, and a reader for
// the reference encodings it wrote (otlp_trace_vectors.txt). Shared by the protobuf and JSON
// encoder tests. Keep in step with the generator.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trace/span_data.h"

namespace djtrace::testing {

struct ReferenceEncoding {
  std::string proto;  // bytes
  std::string json;   // one line
};

inline std::string FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::runtime_error("bad hex");
  };
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return bytes;
}

inline std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 0xF]);
  }
  return hex;
}

inline std::map<std::string, ReferenceEncoding> ReadReferenceEncodings() {
  std::ifstream in(DJTRACE_TEST_DATA_DIR "/otlp_trace_vectors.txt");
  if (!in) throw std::runtime_error("cannot open otlp_trace_vectors.txt");
  std::map<std::string, ReferenceEncoding> cases;
  std::string line, name;
  while (std::getline(in, line)) {
    if (line.rfind("case ", 0) == 0) {
      name = line.substr(5);
    } else if (line.rfind("proto ", 0) == 0) {
      cases[name].proto = FromHex(std::string_view(line).substr(6));
    } else if (line.rfind("json ", 0) == 0) {
      cases[name].json = line.substr(5);
    }
  }
  return cases;
}

// A batch of spans and what keeps them alive.
struct Batch {
  std::vector<std::unique_ptr<SpanData>> owned;
  std::vector<const SpanData*> spans;
  SpanData& Add() {
    owned.push_back(std::make_unique<SpanData>());
    spans.push_back(owned.back().get());
    return *owned.back();
  }
};

inline TraceId TraceIdFromHex(std::string_view hex) {
  std::string bytes = FromHex(hex);
  TraceId id{};
  for (size_t i = 0; i < 16; ++i) id[i] = static_cast<uint8_t>(bytes[i]);
  return id;
}

inline SpanId SpanIdOf(uint64_t v) {
  SpanId id{};
  for (int i = 7; i >= 0; --i, v >>= 8) id[i] = static_cast<uint8_t>(v);
  return id;
}

inline const TraceId kTraceA = TraceIdFromHex("4bf92f3577b34da6a3ce929d0e0e4736");
inline const TraceId kTraceB = TraceIdFromHex("0af7651916cd43dd8448eb211c80319c");
constexpr uint64_t kT0 = 1'700'000'000'000'000'000ULL;
constexpr const char* kSchema126 = "https://opentelemetry.io/schemas/1.26.0";
constexpr const char* kSchema121 = "https://opentelemetry.io/schemas/1.21.0";
// Span and link flags as the trace unit fills them: W3C sampled, plus the is-remote bits.
constexpr uint32_t kSampledLocal = 0x101;
constexpr uint32_t kSampledRemote = 0x301;

inline Attribute Str(std::string key, std::string value) { return {std::move(key), value}; }
inline Attribute Int(std::string key, int64_t value) { return {std::move(key), value}; }

inline std::shared_ptr<const Resource> ResourceMain() {
  return std::make_shared<Resource>(
      Resource{{Str("service.name", "orders"), Str("service.version", "1.2.3"),
                Str("deployment.environment.name", "prod")},
               kSchema126});
}

inline std::shared_ptr<const InstrumentationScope> ScopeMain() {
  return std::make_shared<InstrumentationScope>(
      InstrumentationScope{"djtrace.django", "0.1.0", kSchema126, {Str("scope.attr", "x")}});
}

// The generator's span(): sampled, internal, 1.5 ms long, starting at kT0, no parent.
inline SpanData& AddSpan(Batch& batch, std::string name, uint64_t span_id,
                         std::shared_ptr<const Resource> resource,
                         std::shared_ptr<const InstrumentationScope> scope,
                         const TraceId& trace_id = kTraceA) {
  SpanData& s = batch.Add();
  s.trace_id = trace_id;
  s.span_id = SpanIdOf(span_id);
  s.flags = kSampledLocal;
  s.name = std::move(name);
  s.kind = SpanKind::kInternal;
  s.start_time_unix_nano = kT0;
  s.end_time_unix_nano = kT0 + 1'500'000;
  s.resource = std::move(resource);
  s.scope = std::move(scope);
  return s;
}

inline Batch CaseEmpty() { return {}; }

inline Batch CaseMinimal() {
  Batch b;
  AddSpan(b, "GET /", 0x00F067AA0BA902B7, ResourceMain(), ScopeMain()).kind = SpanKind::kServer;
  return b;
}

inline Batch CaseAttributeTypes() {
  Batch b;
  SpanData& s = AddSpan(b, "attributes", 0x1111111111111111, ResourceMain(), ScopeMain());
  const double inf = std::numeric_limits<double>::infinity();
  s.attributes = {
      {"bool.true", true},
      {"bool.false", false},
      Int("int.zero", 0),
      Int("int.negative", -42),
      Int("int.max", std::numeric_limits<int64_t>::max()),
      Int("int.min", std::numeric_limits<int64_t>::min()),
      {"double", 1.5},
      {"double.zero", 0.0},
      {"double.negative_zero", -0.0},
      {"double.nan", std::numeric_limits<double>::quiet_NaN()},
      {"double.inf", inf},
      {"double.negative_inf", -inf},
      {"double.subnormal", 5e-324},
      {"double.big", 1e300},
      {"double.integral", 3.0},
      {"double.fraction", 0.1},
      Str("string.empty", ""),
      Str("string", "hello"),
      {"array.bool", std::vector<bool>{true, false}},
      {"array.int", std::vector<int64_t>{1, -1, 300}},
      {"array.double", std::vector<double>{0.5, -2.25}},
      {"array.string", std::vector<std::string>{"a", "", "ü"}},
      {"array.empty", std::vector<int64_t>{}},
      {"array.empty.string", std::vector<std::string>{}},
      Str("", "empty key"),
  };
  return b;
}

inline Batch CaseEvents() {
  Batch b;
  SpanData& s = AddSpan(b, "with events", 0x2222222222222222, ResourceMain(), ScopeMain());
  s.events.push_back({"exception",
                      kT0 + 10,
                      {Str("exception.type", "ValueError"), Str("exception.message", "boom")},
                      0});
  s.events.push_back({"no attributes", kT0 + 20, {}, 0});
  s.events.push_back({"dropped", kT0 + 30, {Int("b", 2)}, 1});
  return b;
}

inline Batch CaseLinks() {
  Batch b;
  SpanData& s = AddSpan(b, "with links", 0x6666666666666666, ResourceMain(), ScopeMain());
  s.links.push_back({kTraceB,
                     SpanIdOf(0x3333333333333333),
                     "vendor=value",
                     kSampledRemote,
                     {Str("link.kind", "follows"), Int("n", 7)},
                     0});
  s.links.push_back({kTraceA, SpanIdOf(0x4444444444444444), "", kSampledLocal, {}, 0});
  s.links.push_back({kTraceB, SpanIdOf(0x5555555555555555), "", kSampledRemote, {Int("b", 2)}, 1});
  return b;
}

inline Batch CaseStatus() {
  Batch b;
  auto r = ResourceMain();
  auto sc = ScopeMain();
  SpanData& error = AddSpan(b, "error", 1, r, sc);
  error.status_code = StatusCode::kError;
  error.status_message = "database is down";
  AddSpan(b, "ok", 2, r, sc).status_code = StatusCode::kOk;
  AddSpan(b, "unset", 3, r, sc);
  return b;
}

inline Batch CaseParents() {
  Batch b;
  auto r = ResourceMain();
  auto sc = ScopeMain();
  AddSpan(b, "root", 0x10, r, sc).trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  AddSpan(b, "local child", 0x11, r, sc).parent_span_id = SpanIdOf(0x10);
  SpanData& remote = AddSpan(b, "remote child", 0x12, r, sc);
  remote.parent_span_id = SpanIdOf(0xABCDEF0123456789);
  remote.flags = kSampledRemote;
  remote.kind = SpanKind::kServer;
  return b;
}

inline Batch CaseKinds() {
  Batch b;
  auto r = ResourceMain();
  auto sc = ScopeMain();
  const char* names[] = {"internal", "server", "client", "producer", "consumer"};
  const SpanKind kinds[] = {SpanKind::kInternal, SpanKind::kServer, SpanKind::kClient,
                            SpanKind::kProducer, SpanKind::kConsumer};
  for (int i = 0; i < 5; ++i) AddSpan(b, names[i], 0x100 + i, r, sc).kind = kinds[i];
  SpanData& huge = AddSpan(b, "huge times", 0x200, r, sc);
  huge.start_time_unix_nano = (uint64_t{1} << 63) + 5;
  huge.end_time_unix_nano = std::numeric_limits<uint64_t>::max();
  return b;
}

inline Batch CaseResourcesScopes() {
  Batch b;
  auto r1 = ResourceMain();
  auto r2 = std::make_shared<Resource>(Resource{{Str("service.name", "worker")}, ""});
  auto s1 = ScopeMain();
  auto s2 = std::make_shared<InstrumentationScope>(InstrumentationScope{
      "celery", "", kSchema121, {Str("messaging.system", "rabbitmq"), Int("n", 3)}});
  AddSpan(b, "r1 s1 a", 1, r1, s1);
  AddSpan(b, "r2 s2 a", 2, r2, s2);
  AddSpan(b, "r1 s2", 3, r1, s2);
  AddSpan(b, "r2 s1", 4, r2, s1);
  AddSpan(b, "r1 s1 b", 5, r1, s1);
  AddSpan(b, "r1 no scope", 6, r1, nullptr);
  AddSpan(b, "r2 s2 b", 7, r2, s2);
  return b;
}

inline Batch CaseEqualContent() {
  Batch b;
  auto r_a = std::make_shared<Resource>(Resource{{Str("service.name", "api"), Int("n", 1)}, ""});
  auto r_b = std::make_shared<Resource>(Resource{{Int("n", 1), Str("service.name", "api")}, ""});
  auto r_bool = std::make_shared<Resource>(Resource{{Str("service.name", "api"), {"n", true}}, ""});
  auto scope = [](std::string version, AttrValue n) {
    return std::make_shared<InstrumentationScope>(
        InstrumentationScope{"lib", std::move(version), "", {{"n", std::move(n)}}});
  };
  auto s_int = scope("1", int64_t{1});
  auto s_bool = scope("1", true);
  auto s_double = scope("1", 1.0);
  auto s_other = scope("2", int64_t{1});
  AddSpan(b, "a int", 1, r_a, s_int);
  AddSpan(b, "b bool", 2, r_b, s_bool);
  AddSpan(b, "bool double", 3, r_bool, s_double);
  AddSpan(b, "a double", 4, r_a, s_double);
  AddSpan(b, "b other", 5, r_b, s_other);
  AddSpan(b, "bool int", 6, r_bool, s_int);
  return b;
}

inline Batch CaseDroppedCounts() {
  Batch b;
  SpanData& s = AddSpan(b, "dropped", 0x7777777777777777, ResourceMain(), ScopeMain());
  s.attributes = {Int("b", 2), Int("c", 3)};
  s.dropped_attributes_count = 1;
  s.events.push_back({"second", kT0 + 2, {}, 0});
  s.dropped_events_count = 1;
  s.links.push_back({kTraceB, SpanIdOf(0x72), "", kSampledLocal, {}, 0});
  s.dropped_links_count = 2;
  return b;
}

inline Batch CaseUnicode() {
  Batch b;
  auto r = std::make_shared<Resource>(Resource{{Str("service.name", "café ☕")}, ""});
  auto sc = std::make_shared<InstrumentationScope>(
      InstrumentationScope{"bibliothèque", "1.0", "", {Str("clé", "valeur")}});
  SpanData& s = AddSpan(b, "GET /café/日本語 🚀", 0x0123456789ABCDEF, r, sc);
  s.attributes = {Str("ключ", "значение"),
                  Str("text", "line1\nline2\t\"quoted\" \\ \x01 \x1f \x7f \u2028 é 日本語 🚀")};
  s.events.push_back({"événement", kT0 + 5, {Str("emoji", "🚀")}, 0});
  s.status_code = StatusCode::kError;
  s.status_message = "échec ✗";
  return b;
}

inline Batch CaseLongStrings() {
  Batch b;
  SpanData& s = AddSpan(b, std::string(200, 'n'), 0x0808080808080808, ResourceMain(), ScopeMain());
  s.attributes = {
      Str("len127", std::string(127, 'a')),
      Str("len128", std::string(128, 'b')),
      Str("len300", std::string(300, 'c')),
      Str("len16384", std::string(16384, 'd')),
      {"array", std::vector<std::string>{std::string(127, 'e'), std::string(128, 'f')}},
  };
  return b;
}

struct NamedCase {
  const char* name;
  Batch (*make)();
};
inline void PrintTo(const NamedCase& c, std::ostream* os) { *os << c.name; }

inline const NamedCase kCases[] = {
    {"empty", CaseEmpty},
    {"minimal", CaseMinimal},
    {"attribute_types", CaseAttributeTypes},
    {"events", CaseEvents},
    {"links", CaseLinks},
    {"status", CaseStatus},
    {"parents", CaseParents},
    {"kinds", CaseKinds},
    {"resources_scopes", CaseResourcesScopes},
    {"equal_content", CaseEqualContent},
    {"dropped_counts", CaseDroppedCounts},
    {"unicode", CaseUnicode},
    {"long_strings", CaseLongStrings},
};

}  // namespace djtrace::testing
