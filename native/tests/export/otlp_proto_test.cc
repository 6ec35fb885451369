#include "export/otlp_proto.h"

#include <gtest/gtest.h>

#include <random>

#include "export/utf8.h"
#include "otlp_test_cases.h"

namespace djtrace {
namespace {

using testing::AddSpan;
using testing::Batch;
using testing::kCases;
using testing::ReadReferenceEncodings;
using testing::ResourceMain;
using testing::ScopeMain;
using testing::ToHex;

std::string Encode(const Batch& batch) {
  std::string out;
  EncodeExportTraceServiceRequest(batch.spans, out);
  return out;
}

class OfficialSdkTest : public ::testing::TestWithParam<testing::NamedCase> {};

TEST_P(OfficialSdkTest, SameBytesAsTheOfficialEncoder) {
  static const auto reference = ReadReferenceEncodings();
  const testing::NamedCase& c = GetParam();
  auto it = reference.find(c.name);
  ASSERT_NE(it, reference.end()) << "no reference for " << c.name;
  EXPECT_EQ(ToHex(Encode(c.make())), ToHex(it->second.proto));
}

INSTANTIATE_TEST_SUITE_P(Cases, OfficialSdkTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(OtlpProtoTest, AppendsToWhatIsAlreadyThere) {
  Batch batch = testing::CaseEvents();
  std::string out = "prefix";
  EncodeExportTraceServiceRequest(batch.spans, out);
  EXPECT_EQ(out, "prefix" + Encode(batch));
}

// The exporter's form: one buffer for every batch, never cleared. Whatever a larger earlier
// request left behind the new one must not leak into it, and a larger request grows it.
TEST(OtlpProtoTest, ReusingWritesEachRequestFromTheBufferStart) {
  std::string buffer(4096, '\xAB');
  for (const testing::NamedCase& c : kCases) {
    Batch batch = c.make();
    const std::string expected = Encode(batch);
    const size_t size = EncodeExportTraceServiceRequestReusing(batch.spans, buffer);
    ASSERT_EQ(size, expected.size()) << c.name;
    EXPECT_EQ(std::string_view(buffer).substr(0, size), expected) << c.name;
    EXPECT_GE(buffer.size(), size) << c.name;
  }
  std::string empty;
  Batch batch = testing::CaseEvents();
  const size_t size = EncodeExportTraceServiceRequestReusing(batch.spans, empty);
  EXPECT_EQ(size, empty.size());
  EXPECT_EQ(empty, Encode(batch));
}

// Spans of a batch pointing to blocks of shared attributes, as the batch processor hands them
// over, and the same spans with the blocks merged into their own attributes.
struct SharedCase {
  Batch apart, merged;
};

SharedCase MakeSharedCase(const std::shared_ptr<const Attributes>& block, int spans) {
  SharedCase c;
  for (Batch* b : {&c.apart, &c.merged}) {
    for (int i = 1; i <= spans; ++i) {
      SpanData& s = AddSpan(*b, "query " + std::to_string(i), i, ResourceMain(), ScopeMain());
      s.attributes = {testing::Int("db.response.returned_rows", i)};
      s.shared_attributes = block;
    }
    // One span of its own, with a malformed value: the rest of the batch is repaired too.
    AddSpan(*b, "own", spans + 1, ResourceMain(), ScopeMain()).attributes = {
        {"note", std::string("caf\xc3")}};
  }
  for (auto& s : c.merged.owned) FlattenAttributes(*s);
  return c;
}

TEST(OtlpProtoTest, SharedAttributesEncodeAsIfMergedIntoEachSpan) {
  auto block = std::make_shared<const Attributes>(Attributes{
      {"db.system.name", std::string("postgresql")},
      {"db.query.text", std::string("SELECT id FROM orders WHERE id = %s")},
      testing::Int("code.lineno", 42),
      {"code.filepath", std::string("/srv/app/\xff/views.py")},  // repaired in the block too
      {"list", std::vector<std::string>{"a", "b"}},
  });
  SharedCase c = MakeSharedCase(block, 3);
  const std::string merged = Encode(c.merged);
  EXPECT_EQ(ToHex(Encode(c.apart)), ToHex(merged));
  EXPECT_EQ(ToHex(Encode(c.apart)), ToHex(merged));  // the block's bytes are kept per batch
  // The next batch's blocks are its own, wherever they sit.
  auto other = std::make_shared<const Attributes>(Attributes{{"db.system.name", std::string("x")}});
  SharedCase d = MakeSharedCase(other, 2);
  EXPECT_EQ(ToHex(Encode(d.apart)), ToHex(Encode(d.merged)));
}

TEST(OtlpProtoTest, EmptyBatchIsAnEmptyMessage) {
  std::string out;
  EncodeExportTraceServiceRequest({}, out);
  EXPECT_TRUE(out.empty());
}

TEST(OtlpProtoTest, OnlyTheIsRemoteBitsOfFlagsAreSent) {
  // The official SDK sends 0x100 (and 0x200 for a remote parent), never the W3C trace flags.
  Batch with_trace_flags = testing::CaseMinimal();
  const_cast<SpanData*>(with_trace_flags.spans[0])->flags = 0x3FF;
  Batch without = testing::CaseMinimal();
  const_cast<SpanData*>(without.spans[0])->flags = 0x300;
  EXPECT_EQ(Encode(with_trace_flags), Encode(without));
}

TEST(OtlpProtoTest, LinkTraceStateIsLeftOutLikeTheSdk) {
  Batch with_state = testing::CaseLinks();
  Batch without = testing::CaseLinks();
  for (auto& s : without.owned) {
    for (Link& l : s->links) l.trace_state.clear();
  }
  EXPECT_EQ(Encode(with_state), Encode(without));
}

TEST(OtlpProtoTest, NullResourceEncodesAsAnEmptyResource) {
  Batch null_resource;
  AddSpan(null_resource, "x", 1, nullptr, ScopeMain());
  Batch empty_resource;
  AddSpan(empty_resource, "x", 1, std::make_shared<Resource>(), ScopeMain());
  std::string encoded = Encode(null_resource);
  EXPECT_EQ(encoded, Encode(empty_resource));
  // resource_spans { resource {} ... }: the resource field is there, and empty.
  ASSERT_GT(encoded.size(), 4u);
  EXPECT_EQ(encoded[0], '\x0a');
  size_t i = 1;
  while (static_cast<uint8_t>(encoded[i]) & 0x80) ++i;  // the ResourceSpans length
  EXPECT_EQ(ToHex(encoded.substr(i + 1, 2)), "0a00");
}

TEST(OtlpProtoTest, InvalidUtf8IsReplacedInEveryStringField) {
  auto bad_resource =
      std::make_shared<Resource>(Resource{{testing::Str("k\xff", "v\xc0")}, "s\xed\xa0\x80"});
  auto bad_scope = std::make_shared<InstrumentationScope>(
      InstrumentationScope{"n\xe2\x82", "v\xf0", "u\x80", {testing::Str("a\xfe", "b")}});
  Batch bad;
  SpanData& s = AddSpan(bad, "name\xff", 1, bad_resource, bad_scope);
  s.trace_state = "a=\xff";
  s.attributes = {testing::Str("key\xff", "value\xe0\xa0"),
                  {"array", std::vector<std::string>{"ok", "x\xf4\x90\x80\x80"}}};
  s.events.push_back({"event\xff", 1, {testing::Str("e\xff", "\xff")}, 0});
  s.status_code = StatusCode::kError;
  s.status_message = "m\xff";

  const std::string r = "\xEF\xBF\xBD";
  auto good_resource =
      std::make_shared<Resource>(Resource{{testing::Str("k" + r, "v" + r)}, "s" + r + r + r});
  auto good_scope = std::make_shared<InstrumentationScope>(
      InstrumentationScope{"n" + r, "v" + r, "u" + r, {testing::Str("a" + r, "b")}});
  Batch good;
  SpanData& g = AddSpan(good, "name" + r, 1, good_resource, good_scope);
  g.trace_state = "a=" + r;
  g.attributes = {testing::Str("key" + r, "value" + r),
                  {"array", std::vector<std::string>{"ok", "x" + r + r + r + r}}};
  g.events.push_back({"event" + r, 1, {testing::Str("e" + r, r)}, 0});
  g.status_code = StatusCode::kError;
  g.status_message = "m" + r;

  EXPECT_EQ(ToHex(Encode(bad)), ToHex(Encode(good)));
}

// ---- A protobuf wire walker for the OTLP trace messages, to check the structure of encodings
// of random batches: every length must frame its message exactly, and strings must be UTF-8.

enum class Message {
  kRequest,
  kResourceSpans,
  kResource,
  kScopeSpans,
  kScope,
  kSpan,
  kEvent,
  kLink,
  kStatus,
  kKeyValue,
  kAnyValue,
  kArrayValue,
};

enum class Field { kMessageOf, kString, kBytes, kScalar };

struct FieldKind {
  Field field;
  Message message;  // for kMessageOf
};

FieldKind KindOf(Message m, uint32_t number) {
  auto sub = [](Message x) { return FieldKind{Field::kMessageOf, x}; };
  const FieldKind str{Field::kString, m}, bytes{Field::kBytes, m}, scalar{Field::kScalar, m};
  switch (m) {
    case Message::kRequest:
      return sub(Message::kResourceSpans);
    case Message::kResourceSpans:
      return number == 1 ? sub(Message::kResource) : number == 2 ? sub(Message::kScopeSpans) : str;
    case Message::kResource:
      return sub(Message::kKeyValue);
    case Message::kScopeSpans:
      return number == 1 ? sub(Message::kScope) : number == 2 ? sub(Message::kSpan) : str;
    case Message::kScope:
      return number == 3 ? sub(Message::kKeyValue) : str;
    case Message::kSpan:
      switch (number) {
        case 1:
        case 2:
        case 4:
          return bytes;
        case 3:
        case 5:
          return str;
        case 9:
          return sub(Message::kKeyValue);
        case 11:
          return sub(Message::kEvent);
        case 13:
          return sub(Message::kLink);
        case 15:
          return sub(Message::kStatus);
        default:
          return scalar;
      }
    case Message::kEvent:
      return number == 2 ? str : number == 3 ? sub(Message::kKeyValue) : scalar;
    case Message::kLink:
      return number <= 2 ? bytes : number == 4 ? sub(Message::kKeyValue) : scalar;
    case Message::kStatus:
      return number == 2 ? str : scalar;
    case Message::kKeyValue:
      return number == 1 ? str : sub(Message::kAnyValue);
    case Message::kAnyValue:
      return number == 1 ? str : number == 5 ? sub(Message::kArrayValue) : scalar;
    case Message::kArrayValue:
      return sub(Message::kAnyValue);
  }
  return scalar;
}

struct WalkCounts {
  size_t spans = 0;
  size_t key_values = 0;
  size_t events = 0;
  size_t links = 0;
};

bool ReadVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

::testing::AssertionResult Walk(Message m, std::string_view in, WalkCounts& counts) {
  while (!in.empty()) {
    uint64_t tag;
    if (!ReadVarint(in, tag)) return ::testing::AssertionFailure() << "bad tag";
    uint32_t number = static_cast<uint32_t>(tag >> 3);
    switch (tag & 7) {
      case 0: {
        uint64_t v;
        if (!ReadVarint(in, v)) return ::testing::AssertionFailure() << "bad varint";
        break;
      }
      case 1:
        if (in.size() < 8) return ::testing::AssertionFailure() << "short fixed64";
        in.remove_prefix(8);
        break;
      case 5:
        if (in.size() < 4) return ::testing::AssertionFailure() << "short fixed32";
        in.remove_prefix(4);
        break;
      case 2: {
        uint64_t length;
        if (!ReadVarint(in, length) || length > in.size()) {
          return ::testing::AssertionFailure()
                 << "bad length in message " << static_cast<int>(m) << " field " << number;
        }
        std::string_view body = in.substr(0, length);
        in.remove_prefix(length);
        FieldKind kind = KindOf(m, number);
        if (kind.field == Field::kString && !IsValidUtf8(body)) {
          return ::testing::AssertionFailure() << "invalid UTF-8 in field " << number;
        }
        if (kind.field == Field::kMessageOf) {
          if (kind.message == Message::kSpan) ++counts.spans;
          if (kind.message == Message::kKeyValue) ++counts.key_values;
          if (kind.message == Message::kEvent) ++counts.events;
          if (kind.message == Message::kLink) ++counts.links;
          auto result = Walk(kind.message, body, counts);
          if (!result) return result;
        }
        break;
      }
      default:
        return ::testing::AssertionFailure() << "bad wire type " << (tag & 7);
    }
  }
  return ::testing::AssertionSuccess();
}

std::string RandomString(std::mt19937& rng) {
  // Mostly short, sometimes around varint boundaries, sometimes with bad UTF-8.
  static const size_t kLengths[] = {0, 1, 5, 20, 126, 127, 128, 129, 300, 16383, 16384};
  std::uniform_int_distribution<size_t> pick(0, std::size(kLengths) - 1);
  size_t n = kLengths[pick(rng)];
  if (n > 1000 && rng() % 4 != 0) n = 10;
  std::string s(n, 'x');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  if (!s.empty() && rng() % 8 == 0) s[rng() % s.size()] = static_cast<char>(0x80 | rng() % 0x80);
  if (!s.empty() && rng() % 8 == 0) s.append("é日🚀");
  return s;
}

AttrValue RandomValue(std::mt19937& rng) {
  switch (rng() % 8) {
    case 0:
      return rng() % 2 == 0;
    case 1:
      return static_cast<int64_t>(rng()) * (rng() % 2 ? -1 : 1) << (rng() % 32);
    case 2:
      return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 3:
      return RandomString(rng);
    case 4:
      return std::vector<bool>(rng() % 4, true);
    case 5:
      return std::vector<int64_t>(rng() % 4, -static_cast<int64_t>(rng()));
    case 6:
      return std::vector<double>(rng() % 4, 0.25);
    default: {
      std::vector<std::string> v(rng() % 4);
      for (auto& s : v) s = RandomString(rng);
      return v;
    }
  }
}

Attributes RandomAttributes(std::mt19937& rng, size_t max) {
  Attributes attributes(rng() % (max + 1));
  for (auto& a : attributes) {
    a.key = RandomString(rng);
    a.value = RandomValue(rng);
  }
  return attributes;
}

TEST(OtlpProtoTest, RandomBatchesAreWellFramed) {
  std::mt19937 rng(20240611);
  std::vector<std::shared_ptr<const Resource>> resources = {
      ResourceMain(), nullptr, std::make_shared<Resource>(Resource{RandomAttributes(rng, 5), "x"})};
  std::vector<std::shared_ptr<const InstrumentationScope>> scopes = {
      ScopeMain(), nullptr,
      std::make_shared<InstrumentationScope>(InstrumentationScope{
          RandomString(rng), RandomString(rng), "", RandomAttributes(rng, 3)})};
  for (int round = 0; round < 40; ++round) {
    Batch batch;
    size_t expected_key_values = 0, expected_events = 0, expected_links = 0;
    const size_t n = rng() % 64;
    for (size_t i = 0; i < n; ++i) {
      SpanData& s = AddSpan(batch, RandomString(rng), rng(), resources[rng() % resources.size()],
                            scopes[rng() % scopes.size()]);
      s.kind = static_cast<SpanKind>(rng() % 6);
      s.start_time_unix_nano = rng() % 3 == 0 ? 0 : rng();
      s.attributes = RandomAttributes(rng, 12);
      s.dropped_attributes_count = rng() % 3;
      for (size_t e = rng() % 3; e > 0; --e) {
        s.events.push_back({RandomString(rng), rng(), RandomAttributes(rng, 3), 0});
      }
      for (size_t l = rng() % 3; l > 0; --l) {
        s.links.push_back({testing::kTraceB, testing::SpanIdOf(rng()), "",
                           static_cast<uint32_t>(rng()), RandomAttributes(rng, 3), 0});
      }
      s.status_code = static_cast<StatusCode>(rng() % 3);
      if (rng() % 4 == 0) s.status_message = RandomString(rng);
      expected_key_values += s.attributes.size();
      expected_events += s.events.size();
      expected_links += s.links.size();
      for (const Event& e : s.events) expected_key_values += e.attributes.size();
      for (const Link& l : s.links) expected_key_values += l.attributes.size();
    }
    std::string out;
    EncodeExportTraceServiceRequest(batch.spans, out);
    WalkCounts counts;
    ASSERT_TRUE(Walk(Message::kRequest, out, counts)) << "round " << round;
    EXPECT_EQ(counts.spans, n);
    EXPECT_EQ(counts.events, expected_events);
    EXPECT_EQ(counts.links, expected_links);
    // Resource and scope attributes are counted once per group; only check the span's share.
    EXPECT_GE(counts.key_values, expected_key_values);
  }
}

}  // namespace
}  // namespace djtrace
