#include "export/otlp_json.h"

#include <gtest/gtest.h>

#include "otlp_test_cases.h"

namespace djtrace {
namespace {

using testing::AddSpan;
using testing::Batch;
using testing::kCases;
using testing::ReadReferenceEncodings;

std::string EncodeJson(const Batch& batch) {
  std::string out;
  EncodeExportTraceServiceRequestJson(batch.spans, out);
  return out;
}

// The reference is the official encoder's message through protobuf's json_format, ids as hex
// (see gen_otlp_trace_vectors.py): same fields, same order, same escaping.
class OfficialSdkJsonTest : public ::testing::TestWithParam<testing::NamedCase> {};

TEST_P(OfficialSdkJsonTest, SameJsonAsTheOfficialMessage) {
  static const auto reference = ReadReferenceEncodings();
  const testing::NamedCase& c = GetParam();
  auto it = reference.find(c.name);
  ASSERT_NE(it, reference.end()) << "no reference for " << c.name;
  EXPECT_EQ(EncodeJson(c.make()), it->second.json);
}

INSTANTIATE_TEST_SUITE_P(Cases, OfficialSdkJsonTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(OtlpJsonTest, OneSpanInFull) {
  Batch batch;
  SpanData& s = AddSpan(batch, "GET /", 0x00f067aa0ba902b7, nullptr, nullptr);
  s.parent_span_id = testing::SpanIdOf(1);
  s.flags = testing::kSampledRemote;
  s.kind = SpanKind::kServer;
  s.start_time_unix_nano = 1;
  s.end_time_unix_nano = 18446744073709551615ULL;
  s.attributes = {{"n", int64_t{-7}}, {"d", 0.25}};
  s.status_code = StatusCode::kError;
  EXPECT_EQ(EncodeJson(batch),
            R"({"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{)"
            R"("traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",)"
            R"("parentSpanId":"0000000000000001","name":"GET /","kind":2,)"
            R"("startTimeUnixNano":"1","endTimeUnixNano":"18446744073709551615",)"
            R"("attributes":[{"key":"n","value":{"intValue":"-7"}},)"
            R"({"key":"d","value":{"doubleValue":0.25}}],"status":{"code":2},"flags":768}]}]}]})");
}

TEST(OtlpJsonTest, AppendsWithoutNewline) {
  std::string out = "x";
  EncodeExportTraceServiceRequestJson({}, out);
  EXPECT_EQ(out, "x{}");
}

TEST(OtlpJsonTest, StringsAreEscapedAndRepaired) {
  Batch batch;
  SpanData& s =
      AddSpan(batch, std::string("a\"b\\c\n\x01\x7f\xff\xe2\x82", 11), 1, nullptr, nullptr);
  s.attributes = {{std::string("k\0z", 3), std::string("\xed\xa0\x80 \xf0\x9f\x9a\x80")}};
  std::string json = EncodeJson(batch);
  EXPECT_NE(json.find(R"("name":"a\"b\\c\n\u0001)"
                      "\x7f\xEF\xBF\xBD\xEF\xBF\xBD\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"({"key":"k\u0000z","value":{"stringValue":")"
                      "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xf0\x9f\x9a\x80\"}}"),
            std::string::npos)
      << json;
}

TEST(OtlpJsonTest, NonFiniteDoublesAreStrings) {
  Batch batch;
  SpanData& s = AddSpan(batch, "x", 1, nullptr, nullptr);
  s.attributes = {{"a", std::vector<double>{std::numeric_limits<double>::quiet_NaN(),
                                            std::numeric_limits<double>::infinity(),
                                            -std::numeric_limits<double>::infinity(), 1e-7}}};
  EXPECT_NE(EncodeJson(batch).find(
                R"({"arrayValue":{"values":[{"doubleValue":"NaN"},{"doubleValue":"Infinity"},)"
                R"({"doubleValue":"-Infinity"},{"doubleValue":1e-07}]}})"),
            std::string::npos);
}

}  // namespace
}  // namespace djtrace
