// The attributes of an HTTP client span, from the method and URL of an outgoing request, as the
// stable HTTP semantic conventions name them (and, on request, the names used before 1.21). The
// URL is split as Python's urllib.parse.urlsplit splits it, so that server.address and
// server.port are what a Python client integration computed; url.full is redacted (url.h).
#pragma once

#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace::http {

// What urlsplit(url).scheme, .hostname and .port give, and where they raise ValueError.
struct UrlAuthority {
  bool valid = true;   // false where urlsplit raises: unbalanced brackets, or a bracketed host
                       // that is not an IPv6 address (nor an IPvFuture one); nothing else is set
  std::string scheme;  // lower-cased; empty when the URL has none
  // Lower-cased (ASCII letters; an IPv6 zone after '%' is kept as written), without IPv6
  // brackets; empty when the URL has no host.
  std::string host;
  int port = -1;              // -1 when absent or invalid
  bool port_invalid = false;  // not decimal digits, or above 65535: where .port raises
};
UrlAuthority SplitUrlAuthority(std::string_view url);

// An IPv6 address as Python's ipaddress.ip_address accepts one (eight groups of up to four hex
// digits, or fewer with one "::"; an IPv4 dotted quad may stand for the last two; a "%zone").
bool IsIpv6Address(std::string_view text);

// Appends the attributes of a request of `method` (empty: GET) to `url` to `out`:
// http.request.method (registered methods in upper case, anything else "_OTHER" with
// http.request.method_original), url.full (redacted), server.address, server.port (the scheme's
// default when the URL has none or 0; nothing where urlsplit or .port raise) and, with
// `old_semconv`,
// http.method, http.url, net.peer.name and net.peer.port. Returns the span name: the method, or
// "HTTP" for "_OTHER".
std::string AppendClientRequestAttributes(std::string_view method, std::string_view url,
                                          bool old_semconv, Attributes* out);

}  // namespace djtrace::http
