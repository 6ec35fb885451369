// The attributes of an HTTP server span, from the fields of a WSGI environ / ASGI scope, as the
// stable HTTP semantic conventions name them (and, on request, the names used before 1.21 as
// well, for OTEL_SEMCONV_STABILITY_OPT_IN=http/dup). One call per request, no Python: the
// integration reads the fields and hands them over; values that carry secrets are redacted
// here (url.query, http.url).
#pragma once

#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace::http {

// What a server knows of a request, as text. An empty field is absent.
struct ServerRequest {
  std::string_view method;         // REQUEST_METHOD, as sent
  std::string_view scheme;         // "http" / "https", after proxy rules
  std::string_view path;           // the path as the application sees it
  std::string_view query;          // QUERY_STRING, undecoded
  std::string_view host_header;    // Host
  std::string_view server_name;    // SERVER_NAME
  std::string_view server_port;    // SERVER_PORT
  std::string_view forwarded_for;  // X-Forwarded-For
  std::string_view remote_addr;    // REMOTE_ADDR
  std::string_view remote_port;    // REMOTE_PORT
  std::string_view user_agent;     // User-Agent
  std::string_view protocol;       // SERVER_PROTOCOL ("HTTP/1.1"); or the bare version ("2")
};

struct ServerRequestOptions {
  // Methods outside the registry (RFC 9110 plus PATCH and QUERY) are recorded as sent instead
  // of as "_OTHER" (OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS-style opt-out).
  bool capture_all_methods = false;
  // Also emit http.method, http.scheme, http.target, http.url, http.host, http.server_name,
  // net.host.port, net.peer.ip, net.peer.port, http.user_agent and http.flavor.
  bool old_semconv = false;
};

// Appends the request's attributes to `out` and returns the method to use in the span name
// ("GET", or "HTTP" for an unknown method; a view into `request` or a literal).
std::string_view AppendServerRequestAttributes(const ServerRequest& request,
                                               const ServerRequestOptions& options,
                                               Attributes* out);

// "host:port", "[v6]:port", "host" -> host and port (-1 when absent or not a port number).
struct HostPort {
  std::string_view host;
  int port = -1;
};
HostPort SplitHostPort(std::string_view host);

// A decimal TCP port (0-65535) or -1.
int ParsePort(std::string_view text);

// The registered method (RFC 9110 plus PATCH and QUERY) that `method` names in any ASCII letter
// case ("get" -> "GET"), or empty.
std::string_view RegisteredMethod(std::string_view method);

}  // namespace djtrace::http
