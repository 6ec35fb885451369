// TLS through the HTTP client: verification against a CA file, the system store, host names and
// IP addresses, client certificates, and the failures a misconfiguration produces.
#include <gtest/gtest.h>

#include <mutex>

#include "export/http_client.h"
#include "export/transport.h"
#include "tests/export/net_test_util.h"

namespace djtrace {
namespace {

using testing_net::HttpResponseText;
using testing_net::KeyPair;
using testing_net::MakeServerTlsContext;
using testing_net::ServerConn;
using testing_net::TempDir;
using testing_net::TestCa;
using testing_net::TestServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

IoContext In(milliseconds ms) { return {Clock::now() + ms, nullptr}; }

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = dir_.Write("ca.pem", ca_.cert_pem());
    server_pair_ = ca_.Issue("DNS:localhost,IP:127.0.0.1");
  }

  std::shared_ptr<const TlsContext> Client(TlsOptions options) {
    std::string error;
    auto ctx = TlsContext::Create(options, error);
    EXPECT_TRUE(ctx) << error;
    return ctx;
  }

  static TestServer::Handler Echo(std::string* sni = nullptr, std::mutex* mu = nullptr) {
    return [sni, mu](ServerConn& c) {
      if (sni) {
        const char* name = SSL_get_servername(c.ssl(), TLSEXT_NAMETYPE_host_name);
        std::lock_guard<std::mutex> lock(*mu);
        *sni = name ? name : "(none)";
      }
      ServerConn::Request req;
      while (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", "tls:" + req.body));
    };
  }

  TempDir dir_;
  TestCa ca_;
  std::string ca_file_;
  KeyPair server_pair_;
};

TEST_F(TlsTest, VerifiesAgainstTheGivenCaByIpAndByName) {
  std::mutex mu;
  std::string sni;
  TestServer server(Echo(&sni, &mu), MakeServerTlsContext(server_pair_));
  auto tls = Client({.ca_file = ca_file_});

  HttpClient by_ip("127.0.0.1", server.port(), "127.0.0.1", tls);
  HttpResult result;
  by_ip.Post("/", "", "a", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "tls:a");
  by_ip.Post("/", "", "b", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "tls:b");
  EXPECT_EQ(by_ip.connections_opened(), 1u);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(sni, "(none)");  // no SNI for an IP address
  }

  HttpClient by_name("localhost", server.port(), "localhost", tls);
  by_name.Post("/", "", "c", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "tls:c");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(sni, "localhost");
}

TEST_F(TlsTest, SystemStoreDoesNotTrustATestCa) {
  TestServer server(Echo(), MakeServerTlsContext(server_pair_));
  HttpClient client("127.0.0.1", server.port(), "x", Client({}));
  HttpResult result;
  client.Post("/", "", "a", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kTls);
  EXPECT_NE(result.error_message.find("certificate verify failed"), std::string::npos)
      << result.error_message;
  EXPECT_NE(result.error_message.find("unable to get local issuer certificate"), std::string::npos)
      << result.error_message;
}

TEST_F(TlsTest, CertificateForAnotherNameIsRejected) {
  KeyPair other = ca_.Issue("DNS:collector.example.com");
  TestServer server(Echo(), MakeServerTlsContext(other));
  auto tls = Client({.ca_file = ca_file_});
  HttpResult result;
  HttpClient by_ip("127.0.0.1", server.port(), "x", tls);
  by_ip.Post("/", "", "a", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kTls);
  EXPECT_NE(result.error_message.find("IP address mismatch"), std::string::npos)
      << result.error_message;
  HttpClient by_name("localhost", server.port(), "x", tls);
  by_name.Post("/", "", "a", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kTls);
  EXPECT_NE(result.error_message.find("hostname mismatch"), std::string::npos)
      << result.error_message;
}

TEST_F(TlsTest, ClientCertificateWhenTheServerAsksForOne) {
  KeyPair client_pair = ca_.Issue(nullptr, /*client=*/true);
  std::string cert_file = dir_.Write("client.pem", client_pair.cert_pem);
  std::string key_file = dir_.Write("client.key", client_pair.key_pem);
  TestServer server(Echo(), MakeServerTlsContext(server_pair_, ca_file_));

  HttpClient with_cert(
      "127.0.0.1", server.port(), "x",
      Client({.ca_file = ca_file_, .client_cert_file = cert_file, .client_key_file = key_file}));
  HttpResult result;
  with_cert.Post("/", "", "m", In(milliseconds(5000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, "tls:m");

  HttpClient without("127.0.0.1", server.port(), "x", Client({.ca_file = ca_file_}));
  without.Post("/", "", "m", In(milliseconds(5000)), result);
  // With TLS 1.3 the refusal arrives after our side of the handshake, as an alert on read.
  EXPECT_NE(result.error, NetError::kNone);
  EXPECT_NE(result.error_message.find("certificate required"), std::string::npos)
      << NetErrorName(result.error) << ": " << result.error_message;
}

TEST_F(TlsTest, PlaintextServerGivesAHint) {
  TestServer server([](ServerConn& c) {
    c.ReadSome();
    c.Write(HttpResponseText(400, "Bad Request", "plain"));
  });
  HttpClient client("127.0.0.1", server.port(), "x", Client({.ca_file = ca_file_}));
  HttpResult result;
  client.Post("/", "", "a", In(milliseconds(5000)), result);
  EXPECT_EQ(result.error, NetError::kTls);
  EXPECT_NE(result.error_message.find("does not seem to speak TLS"), std::string::npos)
      << result.error_message;
}

TEST_F(TlsTest, CloseNotifyOnAnIdleConnectionLeadsToAReconnect) {
  // One request per connection, then a clean TLS shutdown (close_notify) and close.
  TestServer server(
      [](ServerConn& c) {
        ServerConn::Request req;
        if (c.ReadRequest(req)) c.Write(HttpResponseText(200, "OK", "once"));
      },
      MakeServerTlsContext(server_pair_));
  HttpClient client("127.0.0.1", server.port(), "x", Client({.ca_file = ca_file_}));
  HttpResult result;
  for (int i = 0; i < 3; ++i) {
    client.Post("/", "", "a", In(milliseconds(5000)), result);
    ASSERT_EQ(result.error, NetError::kNone) << i << ": " << result.error_message;
    EXPECT_EQ(result.response.body, "once");
    std::this_thread::sleep_for(milliseconds(30));
  }
  EXPECT_EQ(client.connections_opened(), 3u);
}

TEST_F(TlsTest, LargeBodyOverTls) {
  TestServer server(
      [](ServerConn& c) {
        ServerConn::Request req;
        while (c.ReadRequest(req)) {
          c.Write(HttpResponseText(
              200, "OK",
              std::to_string(req.body.size()) + ":" + req.body.substr(req.body.size() - 3)));
        }
      },
      MakeServerTlsContext(server_pair_));
  std::string body(3 << 20, 'z');
  body.replace(body.size() - 3, 3, "end");
  HttpClient client("127.0.0.1", server.port(), "x", Client({.ca_file = ca_file_}));
  HttpResult result;
  client.Post("/", "", body, In(milliseconds(10000)), result);
  ASSERT_EQ(result.error, NetError::kNone) << result.error_message;
  EXPECT_EQ(result.response.body, std::to_string(body.size()) + ":end");
}

TEST_F(TlsTest, ConfigurationErrorsAreClear) {
  std::string error;
  EXPECT_FALSE(TlsContext::Create({.ca_file = dir_.path() + "/missing.pem"}, error));
  EXPECT_NE(error.find("cannot read the certificate file"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;

  std::string junk = dir_.Write("junk.pem", "not a certificate\n");
  EXPECT_FALSE(TlsContext::Create({.ca_file = junk}, error));
  EXPECT_NE(error.find("no usable PEM certificate"), std::string::npos) << error;

  EXPECT_FALSE(TlsContext::Create({.client_cert_file = ca_file_}, error));
  EXPECT_EQ(error, "a client certificate was given without its client key");

  KeyPair a = ca_.Issue(nullptr, true);
  KeyPair b = ca_.Issue(nullptr, true);
  std::string cert = dir_.Write("a.pem", a.cert_pem);
  std::string key = dir_.Write("b.key", b.key_pem);
  EXPECT_FALSE(TlsContext::Create({.client_cert_file = cert, .client_key_file = key}, error));
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
}

TEST_F(TlsTest, Http2AlpnIsNegotiatedWhenOffered) {
  TestServer server([](ServerConn& c) { c.DrainUntilClosed(); },
                    MakeServerTlsContext(server_pair_, "", /*offer_h2=*/true));
  auto tls = Client({.ca_file = ca_file_, .alpn = {"h2"}});
  Connection conn;
  std::string error;
  ASSERT_EQ(conn.Open("127.0.0.1", server.port(), tls.get(), In(milliseconds(5000)), error),
            NetError::kNone)
      << error;
  EXPECT_EQ(conn.alpn(), "h2");
  conn.Close();

  Connection no_alpn;
  auto plain_tls = Client({.ca_file = ca_file_});
  ASSERT_EQ(
      no_alpn.Open("127.0.0.1", server.port(), plain_tls.get(), In(milliseconds(5000)), error),
      NetError::kNone)
      << error;
  EXPECT_EQ(no_alpn.alpn(), "");
}

}  // namespace
}  // namespace djtrace
