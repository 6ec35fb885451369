#include "export/otlp_exporter.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "export/gzip.h"
#include "export/otlp_proto.h"
#include "tests/export/h2_test_server.h"
#include "tests/export/net_test_util.h"

namespace djtrace {
namespace {

using testing_net::GrpcReply;
using testing_net::GrpcRequestSeen;
using testing_net::GrpcTestService;
using testing_net::HttpResponseText;
using testing_net::ServerConn;
using testing_net::TestServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Helpers

class Batch {
 public:
  explicit Batch(int n) {
    auto resource = std::make_shared<Resource>();
    resource->attributes.push_back({"service.name", std::string("shop")});
    auto scope = std::make_shared<InstrumentationScope>();
    scope->name = "djtrace.test";
    for (int i = 0; i < n; ++i) {
      auto span = std::make_unique<SpanData>();
      span->trace_id[15] = 1;
      span->span_id[7] = static_cast<uint8_t>(i + 1);
      span->name = "GET /orders/" + std::to_string(i);
      span->kind = SpanKind::kServer;
      span->start_time_unix_nano = 1700000000000000000ull + i;
      span->end_time_unix_nano = 1700000000000500000ull + i;
      span->attributes.push_back({"http.response.status_code", int64_t{200}});
      span->resource = resource;
      span->scope = scope;
      ptrs_.push_back(span.get());
      spans_.push_back(std::move(span));
    }
  }
  std::span<const SpanData* const> spans() const { return ptrs_; }
  std::string Encoded() const {
    std::string out;
    EncodeExportTraceServiceRequest(ptrs_, out);
    return out;
  }

 private:
  std::vector<std::unique_ptr<SpanData>> spans_;
  std::vector<const SpanData*> ptrs_;
};

struct LogSink {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> lines;
  LogFn Fn() {
    return [this](int level, std::string_view msg) {
      std::lock_guard<std::mutex> lock(mu);
      lines.emplace_back(level, std::string(msg));
    };
  }
  std::vector<std::pair<int, std::string>> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(lines, {});
  }
};

// A fast policy for tests: 10 ms, 20 ms, 40 ms... no jitter.
RetryPolicy FastRetry() {
  RetryPolicy p;
  p.initial_backoff = milliseconds(10);
  p.max_backoff = milliseconds(80);
  p.jitter = 0;
  p.min_server_delay = milliseconds(1);
  return p;
}

Clock::time_point Far() { return Clock::now() + std::chrono::seconds(30); }

// An HTTP server whose answer to request number `index` a test chooses.
using HttpBehavior = std::function<std::string(const ServerConn::Request&, int index)>;
struct HttpFixture {
  explicit HttpFixture(HttpBehavior behavior)
      : behavior(std::move(behavior)), server([this](ServerConn& c) {
          ServerConn::Request req;
          while (c.ReadRequest(req)) {
            int index;
            {
              std::lock_guard<std::mutex> lock(mu);
              index = static_cast<int>(requests.size());
              requests.push_back(req);
            }
            std::string reply = this->behavior(req, index);
            if (reply.empty()) {  // silence
              c.DrainUntilClosed();
              return;
            }
            c.Write(reply);
          }
        }) {}
  std::string Url() const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/traces";
  }
  std::vector<ServerConn::Request> Requests() {
    std::lock_guard<std::mutex> lock(mu);
    return requests;
  }
  HttpBehavior behavior;
  std::mutex mu;
  std::vector<ServerConn::Request> requests;
  TestServer server;
};

std::string Ok() { return HttpResponseText(200, "OK", ""); }

std::unique_ptr<OtlpHttpExporter> MakeHttp(OtlpExporterOptions options) {
  std::string error;
  auto exporter = OtlpHttpExporter::Create(std::move(options), error);
  EXPECT_TRUE(exporter) << error;
  return exporter;
}

std::unique_ptr<OtlpGrpcExporter> MakeGrpc(OtlpExporterOptions options) {
  std::string error;
  auto exporter = OtlpGrpcExporter::Create(std::move(options), error);
  EXPECT_TRUE(exporter) << error;
  return exporter;
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

TEST(OtlpHttpExporterTest, SendsTheEncodedBatchWithHeaders) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.headers = {{"Authorization", "Bearer abc"}, {"X-Tenant", "t1"}};
  o.user_agent = "djtrace/0.1";
  auto exporter = MakeHttp(o);
  Batch batch(3);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);

  auto requests = f.Requests();
  ASSERT_EQ(requests.size(), 2u);
  const auto& req = requests[0];
  EXPECT_EQ(req.head.substr(0, req.head.find("\r\n")), "POST /v1/traces HTTP/1.1");
  EXPECT_EQ(req.Header("content-type"), "application/x-protobuf");
  EXPECT_EQ(req.Header("content-encoding"), "");
  EXPECT_EQ(req.Header("user-agent"), "djtrace/0.1");
  EXPECT_EQ(req.Header("authorization"), "Bearer abc");
  EXPECT_EQ(req.Header("x-tenant"), "t1");
  EXPECT_EQ(req.body, batch.Encoded());

  OtlpExporterStats s = exporter->stats();
  EXPECT_EQ(s.batches_exported, 2u);
  EXPECT_EQ(s.spans_exported, 6u);
  EXPECT_EQ(s.batches_failed, 0u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.last_error, "");
  EXPECT_EQ(exporter->endpoint_text(), f.Url());
}

TEST(OtlpHttpExporterTest, GzipBody) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.compression = OtlpCompression::kGzip;
  auto exporter = MakeHttp(o);
  Batch batch(50);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  auto req = f.Requests().at(0);
  EXPECT_EQ(req.Header("content-encoding"), "gzip");
  std::string plain;
  ASSERT_TRUE(GzipDecompress(req.body, plain));
  EXPECT_EQ(plain, batch.Encoded());
  EXPECT_LT(req.body.size(), plain.size());
}

TEST(OtlpHttpExporterTest, EmptyBatchSendsNothing) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  auto exporter = MakeHttp({.endpoint = f.Url()});
  EXPECT_EQ(exporter->Export({}, Far()), ExportResult::kSuccess);
  EXPECT_EQ(f.Requests().size(), 0u);
  EXPECT_EQ(exporter->stats().batches_exported, 0u);
}

TEST(OtlpHttpExporterTest, RetriesA503ThenSucceeds) {
  HttpFixture f([](const ServerConn::Request&, int index) {
    return index == 0 ? HttpResponseText(503, "Service Unavailable", "busy") : Ok();
  });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  Batch batch(2);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_EQ(f.Requests().size(), 2u);
  EXPECT_EQ(exporter->stats().retries, 1u);
  EXPECT_EQ(exporter->stats().batches_exported, 1u);
  EXPECT_TRUE(log.Take().empty());  // recovered within the export: nothing to report
}

TEST(OtlpHttpExporterTest, JitterComesFromTheInjectedSource) {
  HttpFixture f([](const ServerConn::Request&, int index) {
    return index < 2 ? HttpResponseText(502, "Bad Gateway", "") : Ok();
  });
  std::vector<double> draws = {0.999, 0.0};
  size_t calls = 0;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry.initial_backoff = milliseconds(100);
  o.retry.jitter = 0.5;
  o.random = [&] { return draws.at(calls++); };
  auto exporter = MakeHttp(o);
  Batch batch(1);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  // 100 ms * 1.4995 + 200 ms * 0.5 = ~250 ms of waiting.
  EXPECT_GE(Clock::now() - start, milliseconds(245));
  EXPECT_EQ(calls, 2u);
  EXPECT_EQ(exporter->stats().retries, 2u);
}

TEST(OtlpHttpExporterTest, RetryAfterIsHonoured) {
  HttpFixture f([](const ServerConn::Request&, int index) {
    return index == 0 ? HttpResponseText(429, "Too Many Requests", "", "Retry-After: 1\r\n") : Ok();
  });
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  auto exporter = MakeHttp(o);
  Batch batch(1);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_GE(Clock::now() - start, milliseconds(990));
}

TEST(OtlpHttpExporterTest, NonRetryableFailureIsReportedOncePerStatus) {
  // google.rpc.Status{code: 3, message: "invalid span"} as the OTLP/HTTP spec asks.
  const std::string status_body = std::string("\x08\x03\x12\x0cinvalid span", 16);
  HttpFixture f([&](const ServerConn::Request&, int index) {
    if (index == 3) return HttpResponseText(401, "Unauthorized", "bad token");
    return HttpResponseText(400, "Bad Request", status_body,
                            "Content-Type: application/x-protobuf\r\n");
  });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  Batch batch(4);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  }
  EXPECT_EQ(f.Requests().size(), 3u);  // no retries
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, kLogError);
  EXPECT_EQ(lines[0].second, "OTLP/HTTP export of 4 spans to " + f.Url() +
                                 " failed: HTTP 400 Bad Request: invalid span");
  Batch one(1);
  EXPECT_EQ(exporter->Export(one.spans(), Far()), ExportResult::kFailure);
  lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].second, "OTLP/HTTP export of 1 span to " + f.Url() +
                                 " failed: HTTP 401 Unauthorized: bad token");

  OtlpExporterStats s = exporter->stats();
  EXPECT_EQ(s.batches_failed, 4u);
  EXPECT_EQ(s.spans_failed, 13u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.last_error, lines[0].second);
}

TEST(OtlpHttpExporterTest, RetryableFailureGivesUpAtTheDeadlineAndRecoveryIsReported) {
  std::atomic<bool> healthy{false};
  HttpFixture f([&](const ServerConn::Request&, int) {
    return healthy ? Ok() : HttpResponseText(503, "Service Unavailable", "down");
  });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  o.timeout = milliseconds(300);
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  Batch batch(1);
  for (int i = 0; i < 2; ++i) {
    auto start = Clock::now();
    EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
    auto elapsed = Clock::now() - start;
    EXPECT_GE(elapsed, milliseconds(200));
    EXPECT_LT(elapsed, milliseconds(1000));
  }
  EXPECT_GE(exporter->stats().retries, 6u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);  // the same outage, reported once
  EXPECT_EQ(lines[0].first, kLogWarning);
  EXPECT_NE(lines[0].second.find("failed: HTTP 503 Service Unavailable: down (gave up after"),
            std::string::npos)
      << lines[0].second;

  healthy = true;
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, kLogInfo);
  EXPECT_NE(lines[0].second.find("succeeded again after 2 failed batches"), std::string::npos);

  healthy = false;  // a new outage is reported anew
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(log.Take().size(), 1u);
}

TEST(OtlpHttpExporterTest, CallersDeadlineBoundsTheExportToo) {
  HttpFixture f([&](const ServerConn::Request&, int) { return std::string(); });  // silence
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.timeout = milliseconds(10000);
  auto exporter = MakeHttp(o);
  Batch batch(1);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Clock::now() + milliseconds(250)),
            ExportResult::kFailure);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(245));
  EXPECT_LT(elapsed, milliseconds(1200));
  EXPECT_NE(exporter->stats().last_error.find("timed out waiting for the response"),
            std::string::npos);
}

TEST(OtlpHttpExporterTest, DeadlineAlreadyPassedSendsNothing) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  LogSink log;
  auto exporter = MakeHttp({.endpoint = f.Url(), .log = log.Fn()});
  Batch batch(2);
  EXPECT_EQ(exporter->Export(batch.spans(), Clock::now() - milliseconds(1)),
            ExportResult::kFailure);
  EXPECT_EQ(f.Requests().size(), 0u);
  EXPECT_EQ(exporter->stats().spans_failed, 2u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("its deadline had passed"), std::string::npos);
}

TEST(OtlpHttpExporterTest, ConnectionRefusedIsRetriedThenReported) {
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(testing_net::UnusedPort()) + "/v1/traces";
  o.retry = FastRetry();
  o.timeout = milliseconds(200);
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  Batch batch(1);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  EXPECT_GT(exporter->stats().retries, 0u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("cannot connect to 127.0.0.1:"), std::string::npos)
      << lines[0].second;
}

TEST(OtlpHttpExporterTest, WhileExitingAFailureIsNotRetried) {
  HttpFixture f([](const ServerConn::Request&, int) {
    return HttpResponseText(503, "Service Unavailable", "");
  });
  LogSink log;
  auto exporter = MakeHttp(
      {.endpoint = f.Url(), .timeout = milliseconds(5000), .log = log.Fn(), .retry = FastRetry()});
  Batch batch(1);
  exporter->SetExiting(true);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(f.Requests().size(), 1u);
  EXPECT_EQ(exporter->stats().retries, 0u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("(1 attempt; not retried: the process is exiting)"),
            std::string::npos)
      << lines[0].second;

  // Off again: retried as usual, until the deadline.
  exporter->SetExiting(false);
  EXPECT_EQ(exporter->Export(batch.spans(), Clock::now() + milliseconds(200)),
            ExportResult::kFailure);
  EXPECT_GT(exporter->stats().retries, 0u);
  EXPECT_GT(f.Requests().size(), 2u);
}

TEST(OtlpHttpExporterTest, ConnectionRefusedWhileExitingIsTriedOnce) {
  LogSink log;
  auto exporter = MakeHttp(
      {.endpoint = "http://127.0.0.1:" + std::to_string(testing_net::UnusedPort()) + "/v1/traces",
       .log = log.Fn(),
       .retry = FastRetry()});
  exporter->SetExiting(true);
  Batch batch(1);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(exporter->stats().retries, 0u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("Connection refused) (1 attempt; not retried"), std::string::npos)
      << lines[0].second;
}

TEST(OtlpHttpExporterTest, ExitingCutsShortAWaitToRetry) {
  HttpFixture f([](const ServerConn::Request&, int index) {
    return index == 0 ? HttpResponseText(503, "Service Unavailable", "", "Retry-After: 30\r\n")
                      : HttpResponseText(503, "Service Unavailable", "");
  });
  LogSink log;
  auto exporter = MakeHttp({.endpoint = f.Url(), .timeout = milliseconds(120000), .log = log.Fn()});
  Batch batch(1);
  std::thread exiting([&] {
    // Once the first attempt has been answered, the exporter waits 30 s to retry.
    while (f.Requests().empty()) std::this_thread::sleep_for(milliseconds(10));
    std::this_thread::sleep_for(milliseconds(100));
    exporter->SetExiting(true);
  });
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Clock::now() + std::chrono::seconds(120)),
            ExportResult::kFailure);
  // Well before the 30 s the server asked for: the wait ended, one last attempt was made.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
  exiting.join();
  EXPECT_EQ(f.Requests().size(), 2u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("(2 attempts; not retried: the process is exiting)"),
            std::string::npos)
      << lines[0].second;
}

TEST(OtlpHttpExporterTest, PartialSuccessIsLoggedOnceAndCounted) {
  HttpFixture f([](const ServerConn::Request&, int) {
    // ExportTraceServiceResponse{partial_success{rejected_spans: 2, error_message: "too old"}}
    return HttpResponseText(200, "OK", std::string("\x0a\x0b\x08\x02\x12\x07too old", 13),
                            "Content-Type: application/x-protobuf\r\n");
  });
  LogSink log;
  auto exporter = MakeHttp({.endpoint = f.Url(), .log = log.Fn()});
  Batch batch(5);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, kLogWarning);
  EXPECT_NE(lines[0].second.find("the receiver rejected 2 of 5 spans: too old"), std::string::npos);
  EXPECT_EQ(exporter->stats().spans_rejected, 4u);
  EXPECT_EQ(exporter->stats().spans_exported, 10u);
}

TEST(OtlpHttpExporterTest, ShutdownCutsShortAnExportWaitingToRetry) {
  HttpFixture f([](const ServerConn::Request&, int) {
    return HttpResponseText(503, "Service Unavailable", "", "Retry-After: 20\r\n");
  });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.timeout = milliseconds(60000);
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  Batch batch(1);
  std::thread shutdown([&] {
    std::this_thread::sleep_for(milliseconds(150));
    exporter->Shutdown();
  });
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Clock::now() + std::chrono::seconds(60)),
            ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  shutdown.join();
  EXPECT_EQ(exporter->stats().last_error, "export cancelled by shutdown");

  // Afterwards: failure at once, without sending, reported once.
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(f.Requests().size(), 1u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("is shut down"), std::string::npos);
  EXPECT_TRUE(exporter->ForceFlush(Far()));
}

TEST(OtlpHttpExporterTest, CreateRejectsBadConfigurationClearly) {
  std::string error;
  EXPECT_FALSE(OtlpHttpExporter::Create({.endpoint = "localhost:4318"}, error));
  EXPECT_NE(error.find("has no scheme"), std::string::npos) << error;
  EXPECT_FALSE(OtlpHttpExporter::Create(
      {.endpoint = "https://localhost:4318/v1/traces", .certificate_file = "/nonexistent/ca.pem"},
      error));
  EXPECT_NE(error.find("cannot read the certificate file \"/nonexistent/ca.pem\""),
            std::string::npos)
      << error;
  EXPECT_FALSE(OtlpHttpExporter::Create(
      {.endpoint = "http://h:1/", .headers = {{"X-A", "ok\r\nInjected: yes"}}}, error));
  EXPECT_EQ(error, "the value of header \"X-A\" contains a line break or NUL");
  EXPECT_FALSE(
      OtlpHttpExporter::Create({.endpoint = "http://h:1/", .headers = {{"a b", "x"}}}, error));
  EXPECT_EQ(error, "invalid header name \"a b\"");
  EXPECT_FALSE(
      OtlpHttpExporter::Create({.endpoint = "http://h:1/", .timeout = milliseconds(-1)}, error));
  EXPECT_EQ(error, "the export timeout must not be negative");
  // Plaintext endpoints ignore certificate options, as the official SDK does.
  EXPECT_TRUE(OtlpHttpExporter::Create(
      {.endpoint = "http://h:1/", .certificate_file = "/nonexistent/ca.pem"}, error));

  OtlpCompression c;
  EXPECT_TRUE(ParseOtlpCompression(" GZIP ", c));
  EXPECT_EQ(c, OtlpCompression::kGzip);
  EXPECT_TRUE(ParseOtlpCompression("none", c));
  EXPECT_EQ(c, OtlpCompression::kNone);
  EXPECT_FALSE(ParseOtlpCompression("deflate", c));
}

TEST(OtlpHttpExporterTest, ReservedHeadersAreDroppedWithAWarning) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.headers = {{"Content-Type", "application/json"}, {"User-Agent", "mine/2"}};
  o.log = log.Fn();
  auto exporter = MakeHttp(o);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("\"Content-Type\""), std::string::npos);
  Batch batch(1);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  auto req = f.Requests().at(0);
  EXPECT_EQ(req.Header("content-type"), "application/x-protobuf");
  EXPECT_EQ(req.Header("user-agent"), "mine/2");  // the user's own wins
  EXPECT_EQ(req.head.find("djtrace-otlp-exporter"), std::string::npos);
}

TEST(OtlpHttpExporterTest, HttpsWithTheGivenCertificate) {
  testing_net::TempDir dir;
  testing_net::TestCa ca;
  std::string ca_file = dir.Write("ca.pem", ca.cert_pem());
  TestServer server(
      [](ServerConn& c) {
        ServerConn::Request req;
        while (c.ReadRequest(req)) c.Write(Ok());
      },
      testing_net::MakeServerTlsContext(ca.Issue("DNS:localhost")));
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/v1/traces";
  Batch batch(1);
  auto trusted = MakeHttp({.endpoint = url, .certificate_file = ca_file});
  EXPECT_EQ(trusted->Export(batch.spans(), Far()), ExportResult::kSuccess);

  LogSink log;
  auto untrusted = MakeHttp({.endpoint = url, .log = log.Fn()});
  auto start = Clock::now();
  EXPECT_EQ(untrusted->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));  // not retried: configuration error
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, kLogError);
  EXPECT_NE(lines[0].second.find("certificate verify failed"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Fork

TEST(OtlpHttpExporterTest, ChildAfterForkUsesItsOwnConnection) {
  HttpFixture f([](const ServerConn::Request&, int) { return Ok(); });
  auto exporter = MakeHttp({.endpoint = f.Url()});
  Batch batch(1);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    exporter->AfterForkInChild();
    // Its own, new connection: the count goes on from the parent's one.
    bool ok = exporter->Export(batch.spans(), Far()) == ExportResult::kSuccess &&
              exporter->stats().connections == 2;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent's connection was left alone: it is still the one in use.
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_EQ(exporter->stats().connections, 1u);
  EXPECT_EQ(f.server.connections(), 2);
  EXPECT_EQ(f.Requests().size(), 3u);
}

TEST(OtlpHttpExporterTest, ForkDuringAnExportInAnotherThread) {
  // The parent's first connection gets no answer, so its export thread is inside Export() when
  // we fork. The child cannot trust that state; it must start afresh and not deadlock.
  HttpFixture f(
      [](const ServerConn::Request&, int index) { return index == 0 ? std::string() : Ok(); });
  auto exporter = MakeHttp({.endpoint = f.Url(), .timeout = milliseconds(3000)});
  Batch batch(1);
  std::thread stuck([&] { exporter->Export(batch.spans(), Far()); });
  while (f.Requests().empty()) std::this_thread::sleep_for(milliseconds(5));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    exporter->AfterForkInChild();
    bool ok = exporter->Export(batch.spans(), Clock::now() + std::chrono::seconds(5)) ==
              ExportResult::kSuccess;
    exporter->Shutdown();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  exporter->Shutdown();  // ends the parent's stuck export at once
  stuck.join();
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC

// base64 of google.rpc.Status{code: 14, details: [Any(RetryInfo{retry_delay: {nanos: 200ms}})]}
std::string RetryInfoDetails(int32_t nanos) {
  auto varint = [](uint64_t v) {
    std::string out;
    while (v >= 0x80) {
      out += static_cast<char>(v | 0x80);
      v >>= 7;
    }
    out += static_cast<char>(v);
    return out;
  };
  auto field = [&](int number, std::string_view bytes) {
    return varint(static_cast<uint64_t>(number) << 3 | 2) + varint(bytes.size()) +
           std::string(bytes);
  };
  std::string duration = "\x10" + varint(static_cast<uint64_t>(nanos));
  std::string retry_info = field(1, duration);
  std::string any = field(1, "type.googleapis.com/google.rpc.RetryInfo") + field(2, retry_info);
  std::string status = "\x08\x0e" + field(3, any);
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : status) {
    acc = acc << 8 | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

struct GrpcFixture {
  explicit GrpcFixture(testing_net::GrpcBehavior behavior)
      : service(std::move(behavior)), server(service.Handler()) {}
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(server.port()); }
  GrpcTestService service;
  TestServer server;
};

TEST(OtlpGrpcExporterTest, SendsTheEncodedBatchCompressedWithMetadata) {
  GrpcFixture f([](const GrpcRequestSeen&, int) { return GrpcReply{}; });
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.headers = {{"Authorization", "Bearer g"}};
  o.compression = OtlpCompression::kGzip;
  auto exporter = MakeGrpc(o);
  Batch batch(20);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  ASSERT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  auto requests = f.service.requests();
  ASSERT_EQ(requests.size(), 2u);
  const auto& req = requests[0];
  EXPECT_EQ(req.Header(":path"), "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
  EXPECT_EQ(req.Header("authorization"), "Bearer g");  // lower-cased for HTTP/2
  EXPECT_EQ(req.Header("grpc-encoding"), "gzip");
  EXPECT_EQ(req.Header("user-agent"), "djtrace-otlp-exporter");
  ASSERT_GE(req.body.size(), 5u);
  EXPECT_EQ(req.body[0], 1);  // compressed flag
  std::string plain;
  ASSERT_TRUE(GzipDecompress(req.Message(), plain));
  EXPECT_EQ(plain, batch.Encoded());
  EXPECT_EQ(exporter->stats().connections, 1u);
  EXPECT_EQ(exporter->endpoint_text(), f.Url());
}

TEST(OtlpGrpcExporterTest, UnavailableWithRetryInfoIsRetriedAfterTheGivenDelay) {
  const std::string details = RetryInfoDetails(200000000);
  GrpcFixture f([&](const GrpcRequestSeen&, int index) {
    GrpcReply r;
    if (index == 0) {
      r.trailers_only = true;
      r.trailers = {{"grpc-status", "14"}, {"grpc-status-details-bin", details}};
    }
    return r;
  });
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  auto exporter = MakeGrpc(o);
  Batch batch(1);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_GE(Clock::now() - start, milliseconds(195));
  EXPECT_EQ(exporter->stats().retries, 1u);
}

TEST(OtlpGrpcExporterTest, ResourceExhaustedOnlyRetriedWithRetryInfo) {
  const std::string details = RetryInfoDetails(1000000);
  std::atomic<bool> with_info{false};
  GrpcFixture f([&](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.trailers_only = true;
    r.trailers = {{"grpc-status", "8"}, {"grpc-message", "quota"}};
    if (with_info) r.trailers.emplace_back("grpc-status-details-bin", details);
    return r;
  });
  LogSink log;
  OtlpExporterOptions o;
  o.endpoint = f.Url();
  o.retry = FastRetry();
  o.timeout = milliseconds(200);
  o.log = log.Fn();
  auto exporter = MakeGrpc(o);
  Batch batch(1);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_EQ(f.service.requests().size(), 1u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, kLogError);
  EXPECT_NE(lines[0].second.find("gRPC status RESOURCE_EXHAUSTED (8): quota"), std::string::npos)
      << lines[0].second;
  with_info = true;
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  EXPECT_GT(f.service.requests().size(), 3u);
}

TEST(OtlpGrpcExporterTest, InvalidArgumentIsReportedOnce) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.trailers_only = true;
    r.trailers = {{"grpc-status", "3"}, {"grpc-message", "span%20too%20big%3A%20%C3%A9%FF%01"}};
    return r;
  });
  LogSink log;
  auto exporter = MakeGrpc({.endpoint = f.Url(), .log = log.Fn()});
  Batch batch(2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kFailure);
  }
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].second,
            "OTLP/gRPC export of 2 spans to " + f.Url() +
                " failed: gRPC status INVALID_ARGUMENT (3): span too big: \xC3\xA9\xEF\xBF\xBD.");
  EXPECT_EQ(exporter->stats().batches_failed, 3u);
}

TEST(OtlpGrpcExporterTest, PartialSuccessFromTheResponseMessage) {
  GrpcFixture f([](const GrpcRequestSeen&, int) {
    GrpcReply r;
    r.message = std::string(
        "\x0a\x0b\x08\x01\x12\x07"
        "dropped",
        13);
    return r;
  });
  LogSink log;
  auto exporter = MakeGrpc({.endpoint = f.Url(), .log = log.Fn()});
  Batch batch(3);
  EXPECT_EQ(exporter->Export(batch.spans(), Far()), ExportResult::kSuccess);
  EXPECT_EQ(exporter->stats().spans_rejected, 1u);
  auto lines = log.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].second.find("rejected 1 of 3 spans: dropped"), std::string::npos);
}

TEST(OtlpGrpcExporterTest, EndpointForms) {
  std::string error;
  // A bare host:port is TLS unless insecure; certificate problems show up at creation.
  EXPECT_FALSE(OtlpGrpcExporter::Create(
      {.endpoint = "collector:4317", .certificate_file = "/nonexistent.pem"}, error));
  EXPECT_NE(error.find("/nonexistent.pem"), std::string::npos);
  auto plain = OtlpGrpcExporter::Create(
      {.endpoint = "collector:4317", .certificate_file = "/nonexistent.pem", .insecure = true},
      error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->endpoint_text(), "http://collector:4317");
  // An explicit scheme wins over the insecure flag.
  EXPECT_FALSE(OtlpGrpcExporter::Create({.endpoint = "https://collector:4317",
                                         .certificate_file = "/nonexistent.pem",
                                         .insecure = true},
                                        error));
  EXPECT_FALSE(OtlpGrpcExporter::Create({.endpoint = "collector"}, error));
}

}  // namespace
}  // namespace djtrace
