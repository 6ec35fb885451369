#include "export/rpc_status.h"

#include <gtest/gtest.h>

#include <string>

namespace djtrace {
namespace {

std::string Hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// Reference bytes made with googleapis-common-protos: Status(code=14, message="try later",
// details=[Any(ErrorInfo(reason="OVERLOADED", domain="x")), Any(RetryInfo(2.5 s))]).
constexpr std::string_view kStatusWithRetryInfo =
    "080e1209747279206c617465721a3b0a28747970652e676f6f676c65617069732e636f6d2f676f6f676c652e72"
    "70632e4572726f72496e666f120f0a0a4f5645524c4f414445441201781a360a28747970652e676f6f676c6561"
    "7069732e636f6d2f676f6f676c652e7270632e5265747279496e666f120a0a0808021080cab5ee01";

TEST(RpcStatusTest, StatusWithRetryInfoAmongOtherDetails) {
  RpcStatus s;
  ASSERT_TRUE(ParseRpcStatus(Hex(kStatusWithRetryInfo), s));
  EXPECT_EQ(s.code, 14);
  EXPECT_EQ(s.message, "try later");
  ASSERT_TRUE(s.retry_delay.has_value());
  EXPECT_EQ(*s.retry_delay, std::chrono::milliseconds(2500));
}

TEST(RpcStatusTest, StatusWithoutDetails) {
  RpcStatus s;
  ASSERT_TRUE(ParseRpcStatus(Hex("080312076261643a20c3a9"), s));  // code 3, "bad: é"
  EXPECT_EQ(s.code, 3);
  EXPECT_EQ(s.message, "bad: \xc3\xa9");
  EXPECT_FALSE(s.retry_delay.has_value());
  ASSERT_TRUE(ParseRpcStatus("", s));
  EXPECT_EQ(s.code, 0);
}

TEST(RpcStatusTest, RetryInfoWithoutDelayAndClamping) {
  // details: Any{type_url=".../google.rpc.RetryInfo", value=""} -> retry, delay zero.
  std::string type_url = "type.googleapis.com/google.rpc.RetryInfo";
  std::string any = "\x0a" + std::string(1, static_cast<char>(type_url.size())) + type_url;
  std::string status = "\x08\x08\x1a" + std::string(1, static_cast<char>(any.size())) + any;
  RpcStatus s;
  ASSERT_TRUE(ParseRpcStatus(status, s));
  EXPECT_EQ(s.code, 8);
  ASSERT_TRUE(s.retry_delay.has_value());
  EXPECT_EQ(s.retry_delay->count(), 0);

  // Duration{seconds = 10^12}: clamped to a day. Negative: zero.
  std::string duration = "\x08\x80\xa0\x94\xa5\x8d\x1d";  // varint 1000000000000
  std::string retry_info = "\x0a" + std::string(1, static_cast<char>(duration.size())) + duration;
  std::string any2 =
      any + "\x12" + std::string(1, static_cast<char>(retry_info.size())) + retry_info;
  std::string status2 = "\x1a" + std::string(1, static_cast<char>(any2.size())) + any2;
  ASSERT_TRUE(ParseRpcStatus(status2, s));
  EXPECT_EQ(*s.retry_delay, std::chrono::seconds(86400));
}

TEST(RpcStatusTest, MalformedInputIsRejected) {
  RpcStatus s;
  EXPECT_FALSE(ParseRpcStatus("\x08", s));  // truncated varint
  EXPECT_FALSE(
      ParseRpcStatus("\x12\x05"
                     "ab",
                     s));                                       // length beyond the end
  EXPECT_FALSE(ParseRpcStatus("\x0b", s));                      // group wire type
  EXPECT_FALSE(ParseRpcStatus(std::string("\x00\x01", 2), s));  // field 0
  EXPECT_FALSE(ParseRpcStatus("\x1a\x02\x0a\x05", s));          // broken nested Any
  EXPECT_FALSE(ParseRpcStatus("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", s));
  // Unknown fields of every wire type are skipped.
  static constexpr char kUnknownFields[] =
      "\x20\x01\x29"
      "12345678\x35"
      "1234\x42\x01x\x08\x05";
  EXPECT_TRUE(ParseRpcStatus(std::string_view(kUnknownFields, sizeof(kUnknownFields) - 1), s));
  EXPECT_EQ(s.code, 5);
  EXPECT_FALSE(
      ParseRpcStatus("\x29"
                     "1234",
                     s));  // fixed64 cut short
}

TEST(RpcStatusTest, ExportTraceServiceResponsePartialSuccess) {
  ExportPartialSuccess p;
  // Made with opentelemetry-proto: partial_success{rejected_spans=3, error_message="bad span"}.
  ASSERT_TRUE(ParseExportTraceServiceResponse(Hex("0a0c08031208626164207370616e"), p));
  EXPECT_EQ(p.rejected_spans, 3);
  EXPECT_EQ(p.error_message, "bad span");
  EXPECT_TRUE(p.present());
  ASSERT_TRUE(ParseExportTraceServiceResponse("", p));
  EXPECT_FALSE(p.present());
  ASSERT_TRUE(ParseExportTraceServiceResponse(std::string("\x0a\x00", 2), p));
  EXPECT_FALSE(p.present());
  EXPECT_FALSE(ParseExportTraceServiceResponse("\x0a\x05\x08", p));
}

}  // namespace
}  // namespace djtrace
