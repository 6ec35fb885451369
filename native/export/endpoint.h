// OTLP endpoint URLs: parsing and validation of OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT values, so
// that configuration can reject a bad value with one clear sentence before any export happens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace {

// The endpoints the OTLP specification names as defaults when none is configured.
inline constexpr std::string_view kDefaultOtlpHttpTracesEndpoint =
    "http://localhost:4318/v1/traces";
inline constexpr std::string_view kDefaultOtlpGrpcEndpoint = "http://localhost:4317";

enum class EndpointKind : uint8_t {
  kHttp,  // OTLP/HTTP: a full URL whose path is used as is ("/v1/traces" is not appended here)
  kGrpc,  // OTLP/gRPC: scheme://host:port; a bare host:port is accepted and its path ignored
};

struct Endpoint {
  bool has_scheme = false;  // false only for a scheme-less gRPC target such as "collector:4317"
  bool secure = false;      // https
  bool port_given = false;  // the URL named a port explicitly
  bool host_is_ip = false;  // an IPv4 or IPv6 literal: no SNI, hostname check against the IP
  std::string host;         // IPv6 literals without the brackets
  uint16_t port = 0;        // the URL's port, or 80/443 from the scheme as URL semantics say
  std::string path;         // path and query, always starting with '/'

  // host[:port] as the Host header and :authority carry it, IPv6 literals in brackets; the port
  // is written when the URL wrote one.
  std::string Authority() const;
  // scheme://authority/path, for log messages.
  std::string ToString() const;
};

// Parses and validates `url`. On failure returns false and sets `error` to a sentence naming the
// problem (no trailing period), e.g. "unsupported scheme \"ftp\" (expected http or https)".
// A missing port follows the scheme (80 for http, 443 for https) as opentelemetry-python does;
// the OTLP default ports 4318/4317 come with the default endpoints above, not with a bare host.
bool ParseEndpoint(std::string_view url, EndpointKind kind, Endpoint& out, std::string& error);

}  // namespace djtrace
