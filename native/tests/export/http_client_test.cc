#include "export/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/export/net_test_util.h"

namespace djtrace {
namespace {

using testing_net::HttpResponseText;
using testing_net::ServerConn;
using testing_net::TestServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Parser

struct Parsed {
  HttpResponseParser::Status status;
  size_t consumed = 0;
  HttpResponse response;
  std::string error;
};

// Feeds `text` in pieces of `step` bytes.
Parsed ParseInSteps(std::string_view text, size_t step, size_t max_body = kDefaultMaxBodyKept,
                    bool eof = false) {
  Parsed out;
  HttpResponseParser parser(max_body);
  parser.Reset(out.response);
  out.status = HttpResponseParser::Status::kIncomplete;
  size_t pos = 0;
  while (pos < text.size() && out.status == HttpResponseParser::Status::kIncomplete) {
    size_t used = 0;
    out.status = parser.Feed(text.substr(pos, step), used);
    pos += used;
    if (used == 0 && out.status == HttpResponseParser::Status::kIncomplete) break;
  }
  if (eof && out.status == HttpResponseParser::Status::kIncomplete)
    out.status = parser.FinishAtEof();
  out.consumed = pos;
  out.error = parser.error();
  return out;
}

TEST(HttpResponseParserTest, ContentLengthWholeAndByteByByte) {
  const std::string text =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\n"
      "X-Folded: a\r\n  b\r\n\r\nhello";
  for (size_t step : {text.size(), size_t{1}, size_t{7}}) {
    Parsed p = ParseInSteps(text, step);
    ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete) << step << p.error;
    EXPECT_EQ(p.response.status, 200);
    EXPECT_EQ(p.response.reason, "OK");
    EXPECT_EQ(p.response.body, "hello");
    EXPECT_EQ(p.response.Header("content-type"), "application/x-protobuf");
    EXPECT_EQ(p.response.Header("x-folded"), "a b");
    EXPECT_TRUE(p.response.keep_alive);
    EXPECT_EQ(p.consumed, text.size());
  }
}

TEST(HttpResponseParserTest, ChunkedWithExtensionsAndTrailers) {
  const std::string text =
      "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n"
      "A\r\n, world!!!\r\n"
      "0\r\nX-Trailer: yes\r\n\r\n";
  for (size_t step : {text.size(), size_t{1}, size_t{3}}) {
    Parsed p = ParseInSteps(text, step);
    ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete) << step << p.error;
    EXPECT_EQ(p.response.status, 400);
    EXPECT_EQ(p.response.body, "hello, world!!!");
    EXPECT_EQ(p.response.body_size, 15u);
    EXPECT_TRUE(p.response.keep_alive);
  }
}

TEST(HttpResponseParserTest, BodyKeptIsBoundedButCounted) {
  std::string body(1000, 'x');
  Parsed p = ParseInSteps(HttpResponseText(500, "Oops", body), 100, 64);
  ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete);
  EXPECT_EQ(p.response.body.size(), 64u);
  EXPECT_EQ(p.response.body_size, 1000u);
}

TEST(HttpResponseParserTest, InterimResponsesAreSkipped) {
  Parsed p = ParseInSteps(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
      "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
      11);
  ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete);
  EXPECT_EQ(p.response.status, 202);
  EXPECT_TRUE(p.response.Header("link").empty());
}

TEST(HttpResponseParserTest, KeepAliveRules) {
  EXPECT_FALSE(
      ParseInSteps("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n",
                   99)
          .response.keep_alive);
  EXPECT_FALSE(
      ParseInSteps("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 99).response.keep_alive);
  EXPECT_TRUE(
      ParseInSteps("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 99)
          .response.keep_alive);
  // Both framings at once: Transfer-Encoding wins and the connection is not trusted again.
  Parsed both = ParseInSteps(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
      "chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      99);
  EXPECT_EQ(both.response.body, "ok");
  EXPECT_FALSE(both.response.keep_alive);
}

TEST(HttpResponseParserTest, BodyUntilCloseAndNoBodyStatuses) {
  Parsed p = ParseInSteps("HTTP/1.1 200 OK\r\n\r\nuntil the end", 4, kDefaultMaxBodyKept, true);
  ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete);
  EXPECT_EQ(p.response.body, "until the end");
  EXPECT_FALSE(p.response.keep_alive);

  p = ParseInSteps("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200", 99);
  ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete);
  EXPECT_EQ(p.consumed, 27u);  // the next response's bytes are left alone
  EXPECT_TRUE(p.response.keep_alive);

  p = ParseInSteps("HTTP/1.1 200\nContent-Length: 2\n\nok", 99);  // bare LF, no reason
  ASSERT_EQ(p.status, HttpResponseParser::Status::kComplete);
  EXPECT_EQ(p.response.body, "ok");
}

TEST(HttpResponseParserTest, Errors) {
  auto error_of = [](std::string_view text, bool eof = false) {
    Parsed p = ParseInSteps(text, 5, kDefaultMaxBodyKept, eof);
    EXPECT_EQ(p.status, HttpResponseParser::Status::kError) << text;
    return p.error;
  };
  EXPECT_EQ(error_of("SSH-2.0-OpenSSH\r\n"), "not an HTTP/1.x response");
  EXPECT_EQ(error_of("HTTP/2 200 OK\r\n"), "not an HTTP/1.x response");
  EXPECT_EQ(error_of("HTTP/1.1 2x0 OK\r\n"), "an invalid HTTP status code");
  EXPECT_EQ(error_of("HTTP/1.1 200OK\r\n"), "an invalid HTTP status line");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nno colon\r\n"), "a header line without a colon");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nbad name: x\r\n"), "an invalid header name");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n"),
            "conflicting Content-Length headers");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n"), "an invalid Content-Length");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "an invalid chunk size");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"),
            "chunk data longer than its size");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffff\r\n"),
            "a chunk size too large");
  EXPECT_EQ(error_of("HTTP/1.1 101 Switching\r\n\r\n"), "an unexpected protocol switch");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true),
            "the connection closed in the middle of the response");
  EXPECT_EQ(error_of("", true), "the connection closed before any response");
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nX: " + std::string(20000, 'a')),
            "an HTTP response line is too long");
  std::string many = "HTTP/1.1 200 OK\r\n";
  std::string large = many;
  for (int i = 0; i < 100; ++i)
    large += "X-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
  EXPECT_EQ(error_of(large), "the HTTP response headers are too large");
  for (int i = 0; i < 200; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(error_of(many), "too many response headers");
}

TEST(HttpHeaderTest, Validation) {
  EXPECT_TRUE(IsValidHttpHeaderName("Authorization"));
  EXPECT_TRUE(IsValidHttpHeaderName("x-api_key.v2"));
  EXPECT_FALSE(IsValidHttpHeaderName(""));
  EXPECT_FALSE(IsValidHttpHeaderName("a b"));
  EXPECT_FALSE(IsValidHttpHeaderName("a:b"));
  EXPECT_TRUE(IsValidHttpHeaderValue("Bearer abc==  "));
  EXPECT_FALSE(IsValidHttpHeaderValue("x\r\nInjected: 1"));
  EXPECT_FALSE(IsValidHttpHeaderValue(std::string("a\0b", 3)));
  std::string block;
  AppendHttpHeader(block, "A", "  1 ");
  EXPECT_EQ(block, "A: 1\r\n");
}

// ---------------------------------------------------------------------------------------------
// Client against a loopback server

IoContext In(milliseconds ms, const Canceller* c = nullptr) { return {Clock::now() + ms, c}; }

std::string Headers() {
  std::string block;
  AppendHttpHeader(block, "Content-Type", "application/x-protobuf");
  AppendHttpHeader(block, "Authorization", "Bearer secret");
  return block;
}

TEST(HttpClientTest, PostsAndKeepsTheConnectionAlive) {
  std::mutex mu;
  std::vector<ServerConn::Request> seen;
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) {
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back(req);
      }
      c.Write(HttpResponseText(200, "OK", "ok-" + std::to_string(req.body.size()),
                               "Content-Type: text/plain\r\n"));
    }
  });
  HttpClient client("127.0.0.1", server.port(), "127.0.0.1:" + std::to_string(server.port()),
                    nullptr);
  HttpResult result;
  for (int i = 0; i < 3; ++i) {
    client.Post("/v1/traces", Headers(), "payload" + std::to_string(i), In(milliseconds(5000)),
                result);
    ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
    EXPECT_EQ(result.response.status, 200);
    EXPECT_EQ(result.response.body, "ok-8");
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(server.connections(), 1);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].head.substr(0, seen[0].head.find("\r\n")), "POST /v1/traces HTTP/1.1");
  EXPECT_EQ(seen[0].Header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].Header("content-length"), "8");
  EXPECT_EQ(seen[0].Header("content-type"), "application/x-protobuf");
  EXPECT_EQ(seen[0].Header("authorization"), "Bearer secret");
  EXPECT_EQ(seen[2].body, "payload2");
}

TEST(HttpClientTest, ChunkedResponseOverTheWire) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) {
      c.Write(
          "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
          "Retry-After: 7\r\n\r\n4\r\nbusy\r\n");
      std::this_thread::sleep_for(milliseconds(20));  // the rest in a later segment
      c.Write("6\r\n, wait\r\n0\r\n\r\n");
    }
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.status, 503);
  EXPECT_EQ(result.response.body, "busy, wait");
  EXPECT_EQ(result.response.Header("retry-after"), "7");
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  EXPECT_EQ(result.response.status, 503);
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST(HttpClientTest, ConnectionCloseMeansANewConnectionNextTime) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    if (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", "", "Connection: close\r\n"));
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  for (int i = 0; i < 3; ++i) {
    client.Post("/", "", "b", In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
    EXPECT_EQ(result.response.status, 200);
    EXPECT_FALSE(result.response.keep_alive);
  }
  EXPECT_EQ(client.connections_opened(), 3u);
}

TEST(HttpClientTest, BodyUntilCloseResponse) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    if (c.ReadRequest(req)) c.Write("HTTP/1.0 200 OK\r\n\r\nold server body");
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "old server body");
}

TEST(HttpClientTest, IdleConnectionClosedByServerIsReplacedTransparently) {
  // The server answers one request per connection, then closes without saying so (an idle
  // timeout). The client must notice before or after sending, and try once more.
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    if (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", "fine"));
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  for (int i = 0; i < 3; ++i) {
    client.Post("/", "", "b", In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << i << ": " << result.error_message;
    EXPECT_EQ(result.response.body, "fine");
    std::this_thread::sleep_for(milliseconds(30));  // let the close arrive
  }
  EXPECT_EQ(client.connections_opened(), 3u);
}

TEST(HttpClientTest, ServerClosingRightAfterReadingIsRetriedOnce) {
  // First connection: read the request, close without answering (a race with an idle timeout
  // that a poll before sending cannot see). The client repeats on a new connection.
  std::atomic<int> n{0};
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) {
      if (n.fetch_add(1) == 1) return;  // second request overall: drop it
      c.Write(HttpResponseText(200, "OK", "fine"));
    }
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "first", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  client.Post("/", "", "second", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "fine");
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(n.load(), 3);
}

TEST(HttpClientTest, FreshConnectionClosedWithoutAnswerIsAnError) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    c.ReadRequest(req);  // and close
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kClosed);
  EXPECT_EQ(result.error_message, "the connection closed before any response");
  EXPECT_EQ(server.connections(), 1);  // no retry on a fresh connection
}

TEST(HttpClientTest, ServerThatNeverAnswersHitsTheDeadline) {
  TestServer server([&](ServerConn& c) { c.DrainUntilClosed(); });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  auto start = Clock::now();
  client.Post("/", "", "b", In(milliseconds(300)), result);
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(result.error, NetError::kTimeout);
  EXPECT_EQ(result.error_message, "timed out waiting for the response");
  EXPECT_GE(elapsed, milliseconds(295));
  EXPECT_LT(elapsed, milliseconds(1000));
}

TEST(HttpClientTest, CancellationEndsAWaitAtOnce) {
  TestServer server([&](ServerConn& c) { c.DrainUntilClosed(); });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  Canceller canceller;
  std::thread cancel([&] {
    std::this_thread::sleep_for(milliseconds(100));
    canceller.Cancel();
  });
  HttpResult result;
  auto start = Clock::now();
  client.Post("/", "", "b", In(milliseconds(10000), &canceller), result);
  auto elapsed = Clock::now() - start;
  cancel.join();
  EXPECT_EQ(result.error, NetError::kCancelled);
  EXPECT_LT(elapsed, milliseconds(2000));
  // Sticky: nothing waits any more.
  EXPECT_FALSE(canceller.SleepUntil(Clock::now() + milliseconds(5000)));
}

TEST(HttpClientTest, ConnectionRefused) {
  HttpClient client("127.0.0.1", testing_net::UnusedPort(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(2000)), result);
  EXPECT_EQ(result.error, NetError::kConnect);
  EXPECT_NE(result.error_message.find("Connection refused"), std::string::npos)
      << result.error_message;
}

TEST(HttpClientTest, UnresolvableHost) {
  HttpClient client("no-such-host.invalid", 4318, "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  EXPECT_TRUE(result.error == NetError::kResolve || result.error == NetError::kTimeout)
      << result.error_message;
  EXPECT_NE(result.error_message.find("no-such-host.invalid"), std::string::npos);
}

TEST(HttpClientTest, HostNameIsResolved) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", ""));
  });
  HttpClient client("localhost", server.port(), "localhost", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  // localhost may resolve to ::1 first, which has no listener here: the next address is tried.
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.status, 200);
}

TEST(HttpClientTest, LargeBodyIsSentWhole) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) {
      size_t sum = 0;
      for (char ch : req.body) sum += static_cast<unsigned char>(ch);
      c.Write(
          HttpResponseText(200, "OK", std::to_string(req.body.size()) + "/" + std::to_string(sum)));
    }
  });
  std::string body(8 << 20, '\0');
  size_t sum = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>(i * 131 % 251);
    sum += static_cast<unsigned char>(body[i]);
  }
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", body, In(milliseconds(10000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, std::to_string(body.size()) + "/" + std::to_string(sum));
}

TEST(HttpClientTest, WritingToAClosedConnectionRaisesNoSigpipe) {
  // With SIGPIPE's default action a plain write() here would kill the test process.
  struct sigaction old_action;
  struct sigaction default_action{};
  default_action.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &default_action, &old_action);
  // The server closes at once (FIN): the client's data then draws a RST, and a send after a
  // RST on a half-closed connection fails with EPIPE, the case that raises SIGPIPE.
  TestServer server([&](ServerConn&) {});
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  std::string body(16 << 20, 'x');
  client.Post("/", "", body, In(milliseconds(5000)), result);
  EXPECT_TRUE(result.error == NetError::kIo || result.error == NetError::kClosed)
      << NetErrorName(result.error) << ": " << result.error_message;
  sigaction(SIGPIPE, &old_action, nullptr);
}

TEST(HttpClientTest, GarbageResponseIsAProtocolError) {
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    if (c.ReadRequest(req)) c.Write("220 smtp.example.com ESMTP\r\n");
    c.DrainUntilClosed();
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kProtocol);
  EXPECT_EQ(result.error_message, "invalid HTTP response: not an HTTP/1.x response");
}

TEST(HttpClientTest, AfterForkInChildSendsNothing) {
  // Simulated in-process: AfterForkInChild must close our descriptor without a TLS/TCP
  // goodbye; the server sees EOF only because the socket's last descriptor is gone.
  std::atomic<bool> got_eof{false};
  TestServer server([&](ServerConn& c) {
    ServerConn::Request req;
    while (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", ""));
    got_eof = c.buffer.empty();
  });
  HttpClient client("127.0.0.1", server.port(), "x", nullptr);
  HttpResult result;
  client.Post("/", "", "b", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone);
  int fd = client.native_handle();
  ASSERT_GE(fd, 0);
  int duplicate = dup(fd);  // stands in for the parent's copy of the descriptor
  client.AfterForkInChild();
  EXPECT_EQ(client.native_handle(), -1);
  // The "parent" still owns a working connection: the server sees nothing yet.
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(got_eof.load());
  close(duplicate);
  for (int i = 0; i < 100 && !got_eof; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(got_eof.load());
  client.Post("/", "", "b", In(milliseconds(5000)), result);  // and the child reconnects
  EXPECT_EQ(result.error, NetError::kNone);
  EXPECT_EQ(client.connections_opened(), 2u);
}

}  // namespace
}  // namespace djtrace
