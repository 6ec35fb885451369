#include "http/server_request.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/http/attribute_values.h"

namespace djtrace::http {
namespace {

using test_values::Int;
using test_values::Str;
using test_values::Values;

Values Build(const ServerRequest& r, ServerRequestOptions o = {}) {
  Attributes attrs;
  AppendServerRequestAttributes(r, o, &attrs);
  return test_values::ByKey(attrs);
}

// The method the span is named with, for a request sent with `method`.
std::string NameMethod(std::string_view method, ServerRequestOptions o = {}) {
  ServerRequest r;
  r.method = method;
  Attributes attrs;
  return std::string(AppendServerRequestAttributes(r, o, &attrs));
}

ServerRequest Typical() {
  ServerRequest r;
  r.method = "GET";
  r.scheme = "http";
  r.path = "/api/orders/7/";
  r.query = "page=2&token=abc";
  r.host_header = "shop.example:8000";
  r.server_name = "backend";
  r.server_port = "9000";
  r.remote_addr = "10.0.0.5";
  r.remote_port = "51000";
  r.user_agent = "curl/8.5";
  r.protocol = "HTTP/1.1";
  return r;
}

TEST(ServerRequestTest, StableAttributes) {
  Values v = Build(Typical());
  EXPECT_EQ(Str(v, "http.request.method"), "GET");
  EXPECT_EQ(Str(v, "url.scheme"), "http");
  EXPECT_EQ(Str(v, "url.path"), "/api/orders/7/");
  EXPECT_EQ(Str(v, "url.query"), "page=2&token=REDACTED");
  EXPECT_EQ(Str(v, "server.address"), "shop.example");
  EXPECT_EQ(Int(v, "server.port"), 8000);
  EXPECT_EQ(Str(v, "client.address"), "10.0.0.5");
  EXPECT_EQ(Str(v, "user_agent.original"), "curl/8.5");
  EXPECT_EQ(Str(v, "network.protocol.version"), "1.1");
  EXPECT_EQ(v.count("http.request.method_original"), 0u);
  EXPECT_EQ(v.count("http.method"), 0u);
  EXPECT_EQ(v.size(), 9u);
}

TEST(ServerRequestTest, UnknownMethods) {
  ServerRequest r = Typical();
  r.method = "get";
  Values v = Build(r);
  EXPECT_EQ(Str(v, "http.request.method"), "GET");
  EXPECT_EQ(Str(v, "http.request.method_original"), "get");
  EXPECT_EQ(NameMethod("get"), "GET");

  r.method = "PROPFIND";
  v = Build(r);
  EXPECT_EQ(Str(v, "http.request.method"), "_OTHER");
  EXPECT_EQ(Str(v, "http.request.method_original"), "PROPFIND");
  EXPECT_EQ(NameMethod("PROPFIND"), "HTTP");

  ServerRequestOptions all;
  all.capture_all_methods = true;
  v = Build(r, all);
  EXPECT_EQ(Str(v, "http.request.method"), "PROPFIND");
  EXPECT_EQ(v.count("http.request.method_original"), 0u);
  EXPECT_EQ(NameMethod("PROPFIND", all), "PROPFIND");

  r.method = "";
  v = Build(r);
  EXPECT_EQ(Str(v, "http.request.method"), "GET");
  EXPECT_EQ(NameMethod(""), "GET");
}

TEST(ServerRequestTest, HostAndPortFallbacks) {
  ServerRequest r = Typical();
  r.host_header = "";
  Values v = Build(r);
  EXPECT_EQ(Str(v, "server.address"), "backend");
  EXPECT_EQ(Int(v, "server.port"), 9000);

  r.host_header = "shop.example";
  v = Build(r);
  EXPECT_EQ(Str(v, "server.address"), "shop.example");
  EXPECT_EQ(Int(v, "server.port"), 9000);  // SERVER_PORT when the Host has none

  r.server_port = "";
  v = Build(r);
  EXPECT_EQ(Int(v, "server.port"), 80);
  r.scheme = "https";
  v = Build(r);
  EXPECT_EQ(Int(v, "server.port"), 443);

  r.host_header = "[2001:db8::1]:8443";
  v = Build(r);
  EXPECT_EQ(Str(v, "server.address"), "2001:db8::1");
  EXPECT_EQ(Int(v, "server.port"), 8443);

  r.host_header = "2001:db8::1";  // bare IPv6: the last group is no port
  v = Build(r);
  EXPECT_EQ(Str(v, "server.address"), "2001:db8::1");
  EXPECT_EQ(Int(v, "server.port"), 443);

  r.host_header = "shop.example:99999";  // not a port: the server's own
  r.server_port = "8080";
  v = Build(r);
  EXPECT_EQ(Str(v, "server.address"), "shop.example:99999");
  EXPECT_EQ(Int(v, "server.port"), 8080);

  r.host_header = "";
  r.server_name = "";
  v = Build(r);
  EXPECT_EQ(v.count("server.address"), 0u);
  EXPECT_EQ(Int(v, "server.port"), 8080);
}

TEST(ServerRequestTest, ClientAddressPrefersForwardedFor) {
  ServerRequest r = Typical();
  r.forwarded_for = " 203.0.113.9 , 10.0.0.1";
  EXPECT_EQ(Str(Build(r), "client.address"), "203.0.113.9");
  r.forwarded_for = "";
  r.remote_addr = "";
  EXPECT_EQ(Build(r).count("client.address"), 0u);
}

TEST(ServerRequestTest, ProtocolVersion) {
  ServerRequest r = Typical();
  r.protocol = "HTTP/2";
  EXPECT_EQ(Str(Build(r), "network.protocol.version"), "2");
  r.protocol = "1.1";  // an ASGI scope's http_version
  EXPECT_EQ(Str(Build(r), "network.protocol.version"), "1.1");
  r.protocol = "";
  EXPECT_EQ(Build(r).count("network.protocol.version"), 0u);
}

TEST(ServerRequestTest, EmptyQueryIsAbsent) {
  ServerRequest r = Typical();
  r.query = "";
  EXPECT_EQ(Build(r).count("url.query"), 0u);
  r.query = "a=1";
  EXPECT_EQ(Str(Build(r), "url.query"), "a=1");
}

TEST(ServerRequestTest, OldSemanticConventions) {
  ServerRequestOptions o;
  o.old_semconv = true;
  ServerRequest r = Typical();
  r.query = "page=2&password=hunter2";
  Values v = Build(r, o);
  EXPECT_EQ(Str(v, "http.method"), "GET");
  EXPECT_EQ(Str(v, "http.scheme"), "http");
  EXPECT_EQ(Str(v, "http.server_name"), "backend");
  EXPECT_EQ(Int(v, "net.host.port"), 9000);
  EXPECT_EQ(Str(v, "http.host"), "shop.example:8000");
  EXPECT_EQ(Str(v, "http.target"), "/api/orders/7/?page=2&password=REDACTED");
  EXPECT_EQ(Str(v, "http.url"), "http://shop.example:8000/api/orders/7/?page=2&password=REDACTED");
  EXPECT_EQ(Str(v, "net.peer.ip"), "10.0.0.5");
  EXPECT_EQ(Int(v, "net.peer.port"), 51000);
  EXPECT_EQ(Str(v, "http.user_agent"), "curl/8.5");
  EXPECT_EQ(Str(v, "http.flavor"), "1.1");
  // The stable names are still there.
  EXPECT_EQ(Str(v, "url.query"), "page=2&password=REDACTED");

  r.host_header = "";
  r.server_name = "";
  r.remote_port = "x";
  v = Build(r, o);
  EXPECT_EQ(v.count("http.url"), 0u);
  EXPECT_EQ(v.count("http.host"), 0u);
  EXPECT_EQ(v.count("net.peer.port"), 0u);
}

TEST(ServerRequestTest, CredentialsInHostAreRedactedInOldUrl) {
  ServerRequestOptions o;
  o.old_semconv = true;
  ServerRequest r = Typical();
  r.host_header = "user:pw@shop.example";
  EXPECT_EQ(Str(Build(r, o), "http.url"),
            "http://REDACTED:REDACTED@shop.example/api/orders/7/?page=2&token=REDACTED");
}

TEST(ServerRequestTest, ParsePort) {
  EXPECT_EQ(ParsePort("0"), 0);
  EXPECT_EQ(ParsePort("65535"), 65535);
  EXPECT_EQ(ParsePort("65536"), -1);
  EXPECT_EQ(ParsePort(""), -1);
  EXPECT_EQ(ParsePort("8o"), -1);
  EXPECT_EQ(ParsePort("-1"), -1);
  EXPECT_EQ(ParsePort("000080"), -1);
}

TEST(ServerRequestTest, SplitHostPort) {
  HostPort hp = SplitHostPort("[::1]");
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.port, -1);
  hp = SplitHostPort("[::1");  // unterminated: kept whole
  EXPECT_EQ(hp.host, "[::1");
  hp = SplitHostPort("example.com:");
  EXPECT_EQ(hp.host, "example.com:");
  EXPECT_EQ(hp.port, -1);
  hp = SplitHostPort("");
  EXPECT_EQ(hp.host, "");
}

}  // namespace
}  // namespace djtrace::http
