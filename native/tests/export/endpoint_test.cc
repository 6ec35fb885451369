#include "export/endpoint.h"

#include <gtest/gtest.h>

namespace djtrace {
namespace {

Endpoint Parse(std::string_view url, EndpointKind kind = EndpointKind::kHttp) {
  Endpoint e;
  std::string error;
  EXPECT_TRUE(ParseEndpoint(url, kind, e, error)) << url << ": " << error;
  return e;
}

std::string Error(std::string_view url, EndpointKind kind = EndpointKind::kHttp) {
  Endpoint e;
  std::string error;
  EXPECT_FALSE(ParseEndpoint(url, kind, e, error)) << url;
  return error;
}

TEST(EndpointTest, DefaultEndpoints) {
  Endpoint http = Parse(kDefaultOtlpHttpTracesEndpoint);
  EXPECT_FALSE(http.secure);
  EXPECT_EQ(http.host, "localhost");
  EXPECT_EQ(http.port, 4318);
  EXPECT_EQ(http.path, "/v1/traces");
  EXPECT_EQ(http.Authority(), "localhost:4318");
  EXPECT_EQ(http.ToString(), "http://localhost:4318/v1/traces");

  Endpoint grpc = Parse(kDefaultOtlpGrpcEndpoint, EndpointKind::kGrpc);
  EXPECT_EQ(grpc.port, 4317);
  EXPECT_EQ(grpc.path, "/");
  EXPECT_TRUE(grpc.has_scheme);
}

TEST(EndpointTest, SchemeDecidesSecurityAndDefaultPort) {
  Endpoint e = Parse("https://api.example.com/v1/traces");
  EXPECT_TRUE(e.secure);
  EXPECT_EQ(e.port, 443);
  EXPECT_FALSE(e.port_given);
  EXPECT_EQ(e.Authority(), "api.example.com");
  e = Parse("HTTP://Example.com");
  EXPECT_FALSE(e.secure);
  EXPECT_EQ(e.port, 80);
  EXPECT_EQ(e.path, "/");
}

TEST(EndpointTest, Ipv6AndIpv4Literals) {
  Endpoint e = Parse("http://[::1]:4318/v1/traces");
  EXPECT_EQ(e.host, "::1");
  EXPECT_TRUE(e.host_is_ip);
  EXPECT_EQ(e.port, 4318);
  EXPECT_EQ(e.Authority(), "[::1]:4318");
  e = Parse("https://[2001:db8::7]/x");
  EXPECT_EQ(e.host, "2001:db8::7");
  EXPECT_EQ(e.port, 443);
  EXPECT_EQ(e.Authority(), "[2001:db8::7]");
  e = Parse("http://10.1.2.3:9/");
  EXPECT_TRUE(e.host_is_ip);
  e = Parse("http://collector_1.svc:4318/v1/traces");
  EXPECT_FALSE(e.host_is_ip);
}

TEST(EndpointTest, PathQueryAndFragment) {
  EXPECT_EQ(Parse("http://h:1/custom/path?tenant=a").path, "/custom/path?tenant=a");
  EXPECT_EQ(Parse("http://h:1?x=1").path, "/?x=1");
  EXPECT_EQ(Parse("http://h:1/v1/traces#frag").path, "/v1/traces");
  EXPECT_EQ(Parse("  http://h:1/v1/traces \t").path, "/v1/traces");
}

TEST(EndpointTest, GrpcForms) {
  Endpoint e = Parse("collector:4317", EndpointKind::kGrpc);
  EXPECT_FALSE(e.has_scheme);
  EXPECT_EQ(e.host, "collector");
  EXPECT_EQ(e.port, 4317);
  e = Parse("https://collector:4317/ignored/path", EndpointKind::kGrpc);
  EXPECT_TRUE(e.secure);
  EXPECT_EQ(e.path, "/");
  e = Parse("http://[::1]:4317", EndpointKind::kGrpc);
  EXPECT_EQ(e.host, "::1");
  EXPECT_NE(Error("collector", EndpointKind::kGrpc).find("neither a scheme nor a port"),
            std::string::npos);
}

TEST(EndpointTest, ClearErrors) {
  EXPECT_EQ(Error(""), "the endpoint is empty");
  EXPECT_NE(Error("localhost:4318/v1/traces").find("has no scheme"), std::string::npos);
  EXPECT_NE(Error("ftp://h/x").find("unsupported scheme \"ftp\""), std::string::npos);
  EXPECT_NE(Error("http:///v1/traces").find("has no host"), std::string::npos);
  EXPECT_NE(Error("http://h:0/").find("invalid port \"0\""), std::string::npos);
  EXPECT_NE(Error("http://h:65536/").find("invalid port"), std::string::npos);
  EXPECT_NE(Error("http://h:/").find("invalid port"), std::string::npos);
  EXPECT_NE(Error("http://h:12a/").find("invalid port"), std::string::npos);
  EXPECT_NE(Error("http://h:123456/").find("invalid port"), std::string::npos);
  EXPECT_NE(Error("http://::1:4318/").find("without brackets"), std::string::npos);
  EXPECT_NE(Error("http://[::1/").find("unterminated"), std::string::npos);
  EXPECT_NE(Error("http://[::g]:1/").find("invalid IPv6"), std::string::npos);
  EXPECT_NE(Error("http://[::1]x/").find("unexpected text"), std::string::npos);
  EXPECT_NE(Error("http://user:pw@h/").find("credentials"), std::string::npos);
  EXPECT_NE(Error("http://bad host/").find("space or control"), std::string::npos);
  EXPECT_NE(Error("http://h\r\n/").find("space or control"), std::string::npos);
  EXPECT_NE(Error("http://a..b/").find("invalid host"), std::string::npos);
  EXPECT_EQ(Error("http://h/caf\xc3\xa9"),
            "the endpoint \"http://h/caf??\" contains a non-ASCII character (percent-encode it "
            "in the path; use the punycode form of a host name)");
  EXPECT_NE(Error("http://a$b/").find("invalid host"), std::string::npos);
}

}  // namespace
}  // namespace djtrace
