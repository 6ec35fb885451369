#include "http/client_request.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/http/attribute_values.h"

namespace djtrace::http {
namespace {

using test_values::Int;
using test_values::Str;
using test_values::Values;

struct Built {
  std::string name;
  Values values;
};

Built Build(std::string_view method, std::string_view url, bool old_semconv = false) {
  Attributes attrs;
  Built b;
  b.name = AppendClientRequestAttributes(method, url, old_semconv, &attrs);
  b.values = test_values::ByKey(attrs);
  return b;
}

TEST(ClientRequest, RegisteredMethodUrlHostAndPort) {
  Built b = Build("get", "https://API.Example.com:8443/orders?id=7");
  EXPECT_EQ(b.name, "GET");
  EXPECT_EQ(Str(b.values, "http.request.method"), "GET");
  EXPECT_EQ(Str(b.values, "url.full"), "https://API.Example.com:8443/orders?id=7");
  EXPECT_EQ(Str(b.values, "server.address"), "api.example.com");
  EXPECT_EQ(Int(b.values, "server.port"), 8443);
  EXPECT_EQ(b.values.count("http.request.method_original"), 0u);
  EXPECT_EQ(b.values.count("http.method"), 0u);
}

TEST(ClientRequest, UnknownMethodIsOtherWithTheOriginalAndNamedHttp) {
  Built b = Build("PURGE", "http://cache.local/x");
  EXPECT_EQ(b.name, "HTTP");
  EXPECT_EQ(Str(b.values, "http.request.method"), "_OTHER");
  EXPECT_EQ(Str(b.values, "http.request.method_original"), "PURGE");
  EXPECT_EQ(Int(b.values, "server.port"), 80);
}

TEST(ClientRequest, EmptyMethodIsGet) { EXPECT_EQ(Build("", "http://h/").name, "GET"); }

TEST(ClientRequest, CredentialsAndSensitiveQueryValuesAreRedacted) {
  Built b = Build("POST", "https://user:pw@pay.example.com/charge?token=abc&amount=5#top");
  EXPECT_EQ(Str(b.values, "url.full"),
            "https://REDACTED:REDACTED@pay.example.com/charge?token=REDACTED&amount=5#top");
  EXPECT_EQ(Str(b.values, "server.address"), "pay.example.com");
  EXPECT_EQ(Int(b.values, "server.port"), 443);
}

TEST(ClientRequest, OldNamesOnRequest) {
  Built b = Build("GET", "http://h.example:81/p?password=x", true);
  EXPECT_EQ(Str(b.values, "http.method"), "GET");
  EXPECT_EQ(Str(b.values, "http.url"), "http://h.example:81/p?password=REDACTED");
  EXPECT_EQ(Str(b.values, "net.peer.name"), "h.example");
  EXPECT_EQ(Int(b.values, "net.peer.port"), 81);
}

TEST(ClientRequest, PortZeroOrAbsentTakesTheSchemeDefault) {
  EXPECT_EQ(Int(Build("GET", "https://h:0/").values, "server.port"), 443);
  EXPECT_EQ(Int(Build("GET", "wss://h/").values, "server.port"), 443);
  EXPECT_EQ(Build("GET", "ftp://h/").values.count("server.port"), 0u);
}

TEST(ClientRequest, WhereUrlsplitRaisesNothingIsGuessed) {
  // Unbalanced brackets: no host, no port (not even the default).
  Built b = Build("GET", "http://[::1/x");
  EXPECT_EQ(b.values.count("server.address"), 0u);
  EXPECT_EQ(b.values.count("server.port"), 0u);
  // A port that is not one: the host stays, no port.
  b = Build("GET", "http://h:99999/");
  EXPECT_EQ(Str(b.values, "server.address"), "h");
  EXPECT_EQ(b.values.count("server.port"), 0u);
  b = Build("GET", "http://h:8a/");
  EXPECT_EQ(b.values.count("server.port"), 0u);
}

TEST(UrlAuthority, SplitsAsUrlsplit) {
  UrlAuthority a = SplitUrlAuthority("  \tHTTPS://u@[FE80::1%Eth0]:0080/x");
  EXPECT_TRUE(a.valid);
  EXPECT_EQ(a.scheme, "https");
  EXPECT_EQ(a.host, "fe80::1%Eth0");
  EXPECT_EQ(a.port, 80);
  a = SplitUrlAuthority("h:80/path");  // "h" is taken as the scheme: no authority
  EXPECT_EQ(a.scheme, "h");
  EXPECT_EQ(a.host, "");
  a = SplitUrlAuthority("//host:1/");  // no scheme, an authority all the same
  EXPECT_EQ(a.host, "host");
  EXPECT_EQ(a.port, 1);
  a = SplitUrlAuthority("http://a@b@c:5?q#f");  // the last '@' ends the userinfo
  EXPECT_EQ(a.host, "c");
  EXPECT_EQ(a.port, 5);
  a = SplitUrlAuthority("http://h:/");  // an empty port is no port
  EXPECT_EQ(a.port, -1);
  EXPECT_FALSE(a.port_invalid);
  a = SplitUrlAuthority("http://[1.2.3.4]/");  // IPv4 in brackets: urlsplit raises
  EXPECT_FALSE(a.valid);
  a = SplitUrlAuthority("http://[v1.fe]/");  // IPvFuture
  EXPECT_TRUE(a.valid);
  EXPECT_EQ(a.host, "v1.fe");
}

TEST(UrlAuthority, Ipv6AddressesAsPythonsIpaddress) {
  for (const char* ok : {"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:1.2.3.4",
                         "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "fe80::1%eth0", "ABCD::ef"}) {
    EXPECT_TRUE(IsIpv6Address(ok)) << ok;
  }
  for (const char* bad :
       {"", ":", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "1.2.3.4", "::1.2.3",
        "::1.2.3.256", "::01.2.3.4", "fe80::1%", ":1::", "1:2:3:4:5:6:7:8::"}) {
    EXPECT_FALSE(IsIpv6Address(bad)) << bad;
  }
}

}  // namespace
}  // namespace djtrace::http
