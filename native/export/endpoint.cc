#include "export/endpoint.h"

#include <arpa/inet.h>

#include <cstring>

namespace djtrace {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Host names as resolvers accept them; '_' is allowed because container and compose service
// names use it even though RFC 952 does not.
bool IsValidHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label_len = 0;
  for (char c : host) {
    if (c == '.') {
      if (label_len == 0) return false;
      label_len = 0;
      continue;
    }
    if (!IsAlnum(c) && c != '-' && c != '_') return false;
    if (++label_len > 63) return false;
  }
  return true;
}

bool IsIpv4Literal(const std::string& host) {
  in_addr addr;
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    // Non-ASCII too: the message must stay valid UTF-8 whatever bytes came in.
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string Endpoint::Authority() const {
  std::string out;
  out.reserve(host.size() + 8);
  bool ipv6 = host.find(':') != std::string::npos;
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  if (port_given) {
    out += ':';
    out += std::to_string(port);
  }
  return out;
}

std::string Endpoint::ToString() const {
  std::string out = secure ? "https://" : "http://";
  out += Authority();
  out += path;
  return out;
}

bool ParseEndpoint(std::string_view url, EndpointKind kind, Endpoint& out, std::string& error) {
  out = Endpoint{};
  // Surrounding blanks come from environment files and YAML; inner ones are errors below.
  while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) url.remove_prefix(1);
  while (!url.empty() && (url.back() == ' ' || url.back() == '\t')) url.remove_suffix(1);
  if (url.empty()) {
    error = "the endpoint is empty";
    return false;
  }
  for (char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) {
      error = "the endpoint " + Quoted(url) + " contains a space or control character";
      return false;
    }
    if (byte >= 0x80) {
      error = "the endpoint " + Quoted(url) +
              " contains a non-ASCII character (percent-encode it in the path; use the "
              "punycode form of a host name)";
      return false;
    }
  }

  std::string_view rest = url;
  size_t scheme_end = rest.find("://");
  if (scheme_end != std::string_view::npos) {
    std::string_view scheme = rest.substr(0, scheme_end);
    if (EqualsIgnoreCase(scheme, "http")) {
      out.secure = false;
    } else if (EqualsIgnoreCase(scheme, "https")) {
      out.secure = true;
    } else {
      error = "unsupported scheme " + Quoted(scheme) + " in endpoint " + Quoted(url) +
              " (expected http or https)";
      return false;
    }
    out.has_scheme = true;
    rest.remove_prefix(scheme_end + 3);
  } else if (kind == EndpointKind::kHttp) {
    error = "the endpoint " + Quoted(url) +
            " has no scheme (expected a URL such as http://localhost:4318/v1/traces)";
    return false;
  }

  size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    error = "the endpoint " + Quoted(url) +
            " contains user credentials; pass them as a header (e.g. Authorization) instead";
    return false;
  }
  if (authority.empty()) {
    error = "the endpoint " + Quoted(url) + " has no host";
    return false;
  }

  std::string_view port_text;
  bool has_port_separator = false;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "the endpoint " + Quoted(url) + " has an unterminated IPv6 address";
      return false;
    }
    out.host.assign(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "the endpoint " + Quoted(url) + " has unexpected text after the IPv6 address";
        return false;
      }
      has_port_separator = true;
      port_text = after.substr(1);
    }
    in6_addr addr6;
    if (inet_pton(AF_INET6, out.host.c_str(), &addr6) != 1) {
      error = "the endpoint " + Quoted(url) + " has an invalid IPv6 address " + Quoted(out.host);
      return false;
    }
    out.host_is_ip = true;
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) {
        error = "the endpoint " + Quoted(url) + " has an IPv6 address without brackets";
        return false;
      }
      has_port_separator = true;
      port_text = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
    }
    out.host.assign(authority);
    if (!IsValidHostName(out.host)) {
      error = "the endpoint " + Quoted(url) + " has an invalid host " + Quoted(out.host);
      return false;
    }
    out.host_is_ip = IsIpv4Literal(out.host);
  }

  if (has_port_separator) {
    uint32_t port = 0;
    bool valid = !port_text.empty() && port_text.size() <= 5;
    for (char c : port_text) {
      if (c < '0' || c > '9') {
        valid = false;
        break;
      }
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!valid || port == 0 || port > 65535) {
      error = "the endpoint " + Quoted(url) + " has an invalid port " + Quoted(port_text) +
              " (expected 1-65535)";
      return false;
    }
    out.port = static_cast<uint16_t>(port);
    out.port_given = true;
  } else if (!out.has_scheme) {
    error = "the endpoint " + Quoted(url) +
            " has neither a scheme nor a port (expected e.g. http://localhost:4317)";
    return false;
  } else {
    out.port = out.secure ? 443 : 80;
  }

  // A fragment never goes on the wire.
  if (size_t fragment = path.find('#'); fragment != std::string_view::npos) {
    path = path.substr(0, fragment);
  }
  if (kind == EndpointKind::kGrpc || path.empty()) {
    // gRPC routes by service and method, never by the endpoint's path; opentelemetry-python
    // ignores it too, so "http://collector:4317/" and the like keep working.
    out.path = "/";
  } else if (path.front() == '?') {
    out.path = "/";
    out.path += path;
  } else {
    out.path.assign(path);
  }
  return true;
}

}  // namespace djtrace
