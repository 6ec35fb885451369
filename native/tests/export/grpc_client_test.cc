#include "export/grpc_client.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <atomic>

#include "export/retry.h"
#include "tests/export/h2_test_server.h"
#include "tests/export/net_test_util.h"

namespace djtrace {
namespace {

using testing_net::GrpcReply;
using testing_net::GrpcRequestSeen;
using testing_net::GrpcTestService;
using testing_net::TestServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Pieces

TEST(GrpcPiecesTest, FormatGrpcTimeout) {
  using std::chrono::nanoseconds;
  using std::chrono::seconds;
  EXPECT_EQ(FormatGrpcTimeout(nanoseconds(0)), "1n");
  EXPECT_EQ(FormatGrpcTimeout(nanoseconds(-5)), "1n");
  EXPECT_EQ(FormatGrpcTimeout(nanoseconds(99999999)), "99999999n");
  EXPECT_EQ(FormatGrpcTimeout(nanoseconds(100000000)), "100000u");
  EXPECT_EQ(FormatGrpcTimeout(milliseconds(10000)), "10000000u");
  EXPECT_EQ(FormatGrpcTimeout(seconds(100)), "100000m");
  EXPECT_EQ(FormatGrpcTimeout(seconds(100) + nanoseconds(1)), "100001m");  // rounded up
  EXPECT_EQ(FormatGrpcTimeout(seconds(1000000)), "1000000S");
  EXPECT_EQ(FormatGrpcTimeout(seconds(int64_t{200000000})), "3333334M");
  EXPECT_EQ(FormatGrpcTimeout(nanoseconds(INT64_MAX)), "2562048H");
}

TEST(GrpcPiecesTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("plain text"), "plain text");
  EXPECT_EQ(PercentDecode("caf%C3%A9%20%25"), "caf\xc3\xa9 %");
  EXPECT_EQ(PercentDecode("100%"), "100%");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
  EXPECT_EQ(PercentDecode("%41%42"), "AB");
}

TEST(GrpcPiecesTest, Base64Decode) {
  std::string out;
  EXPECT_TRUE(Base64Decode("aGVsbG8", out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(Base64Decode("aGVsbG8=", out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(Base64Decode("", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(Base64Decode("-_8", out));  // URL-safe alphabet
  EXPECT_EQ(out, "\xfb\xff");
  EXPECT_TRUE(Base64Decode("+/8", out));
  EXPECT_EQ(out, "\xfb\xff");
  EXPECT_FALSE(Base64Decode("a", out));
  EXPECT_FALSE(Base64Decode("aGV sbG8", out));
  EXPECT_FALSE(Base64Decode("aGV*", out));
}

// Unpadded base64 of Status(code=14, "try later", [ErrorInfo, RetryInfo(2.5 s)]), made with
// googleapis-common-protos.
constexpr char kStatusDetailsBin[] =
    "CA4SCXRyeSBsYXRlcho7Cih0eXBlLmdvb2dsZWFwaXMuY29tL2dvb2dsZS5ycGMuRXJyb3JJbmZvEg8KCk9WRVJMT0FE"
    "RUQSAXgaNgoodHlwZS5nb29nbGVhcGlzLmNvbS9nb29nbGUucnBjLlJldHJ5SW5mbxIKCggIAhCAyrXuAQ";

TEST(GrpcPiecesTest, StatusDetailsWithRetryInfo) {
  RpcStatus status;
  ASSERT_TRUE(ParseGrpcStatusDetails(kStatusDetailsBin, status));
  EXPECT_EQ(status.code, 14);
  EXPECT_EQ(status.message, "try later");
  EXPECT_EQ(status.retry_delay, milliseconds(2500));
  EXPECT_FALSE(ParseGrpcStatusDetails("!!!", status));
}

TEST(GrpcPiecesTest, StatusMappings) {
  EXPECT_EQ(GrpcStatusFromHttpStatus(400), 13);
  EXPECT_EQ(GrpcStatusFromHttpStatus(401), 16);
  EXPECT_EQ(GrpcStatusFromHttpStatus(403), 7);
  EXPECT_EQ(GrpcStatusFromHttpStatus(404), 12);
  for (int s : {429, 502, 503, 504}) EXPECT_EQ(GrpcStatusFromHttpStatus(s), 14);
  EXPECT_EQ(GrpcStatusFromHttpStatus(500), 2);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_REFUSED_STREAM), 14);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_CANCEL), 1);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_ENHANCE_YOUR_CALM), 8);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_INADEQUATE_SECURITY), 7);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_INTERNAL_ERROR), 13);
  EXPECT_EQ(GrpcStatusFromHttp2Error(NGHTTP2_NO_ERROR), 13);
}

// ---------------------------------------------------------------------------------------------
// Calls against an nghttp2 server

IoContext In(milliseconds ms, const Canceller* c = nullptr) { return {Clock::now() + ms, c}; }

GrpcMetadata Metadata() {
  return {{"user-agent", "djtrace-test/1"}, {"authorization", "Bearer t0ken"}};
}

struct GrpcFixture {
  explicit GrpcFixture(testing_net::GrpcBehavior behavior, SSL_CTX* tls = nullptr)
      : service(std::move(behavior)), server(service.Handler(), tls) {}
  GrpcTestService service;
  TestServer server;
};

TEST(GrpcClientTest, UnaryCallSendsTheRightRequestAndReadsTrailers) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.message = "\x0a\x02\x08\x01";  // partial_success{rejected_spans: 1}
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "127.0.0.1:" + std::to_string(f.server.port()),
                    nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, Metadata(), "request-bytes", false, In(milliseconds(5000)),
                   result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.http_status, 200);
  EXPECT_TRUE(result.grpc_status_received);
  EXPECT_EQ(result.grpc_status, 0);
  EXPECT_EQ(result.response_message, "\x0a\x02\x08\x01");

  auto requests = f.service.requests();
  ASSERT_EQ(requests.size(), 1u);
  const GrpcRequestSeen& req = requests[0];
  EXPECT_EQ(req.Header(":method"), "POST");
  EXPECT_EQ(req.Header(":scheme"), "http");
  EXPECT_EQ(req.Header(":path"), "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
  EXPECT_EQ(req.Header(":authority"), "127.0.0.1:" + std::to_string(f.server.port()));
  EXPECT_EQ(req.Header("content-type"), "application/grpc");
  EXPECT_EQ(req.Header("te"), "trailers");
  EXPECT_EQ(req.Header("user-agent"), "djtrace-test/1");
  EXPECT_EQ(req.Header("authorization"), "Bearer t0ken");
  std::string timeout = req.Header("grpc-timeout");
  ASSERT_FALSE(timeout.empty());
  EXPECT_EQ(timeout.back(), 'u');  // ~5 s in microseconds
  EXPECT_LE(std::stoll(timeout), 5000000);
  EXPECT_GT(std::stoll(timeout), 4000000);
  EXPECT_EQ(req.body, std::string("\0\0\0\0\x0drequest-bytes", 18));
}

TEST(GrpcClientTest, CompressedFlagAndKeepAliveAcrossCalls) {
  GrpcFixture f([](const GrpcRequestSeen&, int) { return GrpcReply{}; });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  for (int i = 0; i < 5; ++i) {
    client.UnaryCall(kOtlpTraceExportPath, {{"grpc-encoding", "gzip"}}, "zz", true,
                     In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
    EXPECT_EQ(result.grpc_status, 0);
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(f.server.connections(), 1);
  auto requests = f.service.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[4].body, std::string("\x01\0\0\0\x02zz", 7));
  EXPECT_EQ(requests[4].Header("grpc-encoding"), "gzip");
}

TEST(GrpcClientTest, LargeMessageRespectsFlowControl) {
  GrpcFixture f([](const GrpcRequestSeen& req, int) {
    GrpcReply r;
    r.trailers = {{"grpc-status", "0"}, {"x-size", std::to_string(req.Message().size())}};
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  std::string message(3 << 20, 'm');  // far beyond the 64 KiB initial window
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, message, false, In(milliseconds(10000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.grpc_status, 0);
  EXPECT_EQ(f.service.requests()[0].Message().size(), message.size());
}

TEST(GrpcClientTest, TrailersOnlyErrorWithRetryInfo) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.trailers_only = true;
    r.trailers = {{"grpc-status", "14"},
                  {"grpc-message", "collector%20overloaded%3A%20try%20later"},
                  {"grpc-status-details-bin", kStatusDetailsBin}};
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.grpc_status, 14);
  EXPECT_EQ(result.grpc_message, "collector overloaded: try later");
  EXPECT_EQ(result.retry_delay, milliseconds(2500));
}

TEST(GrpcClientTest, HttpErrorWithoutGrpcStatusIsMapped) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.http_status = 503;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_FALSE(result.grpc_status_received);
  EXPECT_EQ(result.http_status, 503);
  EXPECT_EQ(result.grpc_status, 14);
  EXPECT_EQ(result.grpc_message, "HTTP status 503");
}

TEST(GrpcClientTest, StreamResetIsMapped) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.rst_error = NGHTTP2_ENHANCE_YOUR_CALM;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.grpc_status, 8);
  EXPECT_EQ(result.grpc_message, "the stream was reset: ENHANCE_YOUR_CALM");
}

TEST(GrpcClientTest, MissingGrpcStatusIsUnknown) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.trailers = {{"x-other", "1"}};
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.grpc_status, 2);
  EXPECT_EQ(result.grpc_message, "the response ended without grpc-status");
}

TEST(GrpcClientTest, GoawayAfterACallMeansANewConnectionForTheNext) {
  GrpcFixture f([](const GrpcRequestSeen&, int index) {
    GrpcReply r;
    r.goaway_after = index == 0;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  for (int i = 0; i < 3; ++i) {
    client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << i << ": " << result.error_message;
    EXPECT_EQ(result.grpc_status, 0);
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(client.connections_opened(), 2u);
}

TEST(GrpcClientTest, RefusedByGoawayIsSentAgainOnANewConnection) {
  // The server refuses the first request with a GOAWAY that excludes its stream: it was never
  // processed, so the client sends it again at once.
  GrpcFixture f([](const GrpcRequestSeen&, int index) {
    GrpcReply r;
    r.refuse_with_goaway = index == 0;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.grpc_status, 0);
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(f.service.requests().size(), 2u);
}

TEST(GrpcClientTest, ConnectionClosedWhileIdleIsReplaced) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.close_after = true;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  for (int i = 0; i < 3; ++i) {
    client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << i << ": " << result.error_message;
    EXPECT_EQ(result.grpc_status, 0);
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(client.connections_opened(), 3u);
}

TEST(GrpcClientTest, ServerThatNeverAnswersHitsTheDeadline) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.never_answer = true;
    return r;
  });
  GrpcClient client("127.0.0.1", f.server.port(), "x", nullptr);
  GrpcCallResult result;
  auto start = Clock::now();
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(300)), result);
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(result.error, NetError::kTimeout);
  EXPECT_GE(elapsed, milliseconds(295));
  EXPECT_LT(elapsed, milliseconds(1000));
}

TEST(GrpcClientTest, ConnectionRefused) {
  GrpcClient client("127.0.0.1", testing_net::UnusedPort(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(2000)), result);
  EXPECT_EQ(result.error, NetError::kConnect);
}

TEST(GrpcClientTest, Http1ServerIsAProtocolError) {
  TestServer server([](testing_net::ServerConn& c) {
    c.ReadSome();
    c.Write(testing_net::HttpResponseText(400, "Bad Request", "not h2"));
  });
  GrpcClient client("127.0.0.1", server.port(), "x", nullptr);
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(2000)), result);
  EXPECT_EQ(result.error, NetError::kProtocol) << result.error_message;
  EXPECT_NE(result.error_message.find("HTTP/2 protocol error with x: "), std::string::npos)
      << result.error_message;
}

class GrpcTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = dir_.Write("ca.pem", ca_.cert_pem());
    pair_ = ca_.Issue("DNS:localhost,IP:127.0.0.1");
  }
  std::shared_ptr<const TlsContext> Tls(std::vector<std::string> alpn) {
    std::string error;
    auto ctx = TlsContext::Create({.ca_file = ca_file_, .alpn = std::move(alpn)}, error);
    EXPECT_TRUE(ctx) << error;
    return ctx;
  }
  testing_net::TempDir dir_;
  testing_net::TestCa ca_;
  std::string ca_file_;
  testing_net::KeyPair pair_;
};

TEST_F(GrpcTlsTest, CallOverTlsWithAlpnH2) {
  GrpcFixture f([](const GrpcRequestSeen&, int) { return GrpcReply{}; },
                testing_net::MakeServerTlsContext(pair_, "", /*offer_h2=*/true));
  GrpcClient client("localhost", f.server.port(), "localhost", Tls({"h2"}));
  GrpcCallResult result;
  for (int i = 0; i < 2; ++i) {
    client.UnaryCall(kOtlpTraceExportPath, {}, "secure", false, In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
    EXPECT_EQ(result.grpc_status, 0);
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(f.service.requests()[0].Header(":scheme"), "https");
  EXPECT_EQ(f.service.requests()[1].Message(), "secure");
}

TEST_F(GrpcTlsTest, ServerWithoutH2IsRejected) {
  GrpcFixture f([](const GrpcRequestSeen&, int) { return GrpcReply{}; },
                testing_net::MakeServerTlsContext(pair_));
  GrpcClient client("127.0.0.1", f.server.port(), "127.0.0.1", Tls({"h2"}));
  GrpcCallResult result;
  client.UnaryCall(kOtlpTraceExportPath, {}, "m", false, In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kProtocol);
  EXPECT_NE(result.error_message.find("ALPN h2"), std::string::npos) << result.error_message;
}

}  // namespace
}  // namespace djtrace
