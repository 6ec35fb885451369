#include "http/server_request.h"

#include <array>

#include "http/url.h"

namespace djtrace::http {
namespace {

constexpr std::array<std::string_view, 10> kKnownMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"};

bool IsKnown(std::string_view method) {
  for (std::string_view known : kKnownMethods)
    if (method == known) return true;
  return false;
}

// The value recorded as http.request.method.
std::string_view RecordedMethod(std::string_view method, const ServerRequestOptions& options) {
  if (IsKnown(method)) return method;
  std::string_view known = RegisteredMethod(method);
  if (!known.empty()) return known;
  return options.capture_all_methods ? method : std::string_view("_OTHER");
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

void Add(Attributes* out, std::string_view key, std::string_view value) {
  out->push_back(Attribute{std::string(key), AttrValue(std::string(value))});
}

void Add(Attributes* out, std::string_view key, int64_t value) {
  out->push_back(Attribute{std::string(key), AttrValue(value)});
}

// The query as recorded: sensitive values redacted.
std::string_view RedactedQuery(std::string_view query, std::string* storage) {
  if (query.empty()) return query;
  return RedactQueryString(query, storage) ? std::string_view(*storage) : query;
}

void AppendOldAttributes(const ServerRequest& r, std::string_view method, std::string_view query,
                         std::string_view version, Attributes* out) {
  Add(out, "http.method", method);
  Add(out, "http.scheme", r.scheme);
  if (!r.server_name.empty()) Add(out, "http.server_name", r.server_name);
  int server_port = ParsePort(r.server_port);
  if (server_port >= 0) Add(out, "net.host.port", server_port);
  std::string_view host = r.host_header.empty() ? r.server_name : r.host_header;
  if (!r.host_header.empty()) Add(out, "http.host", r.host_header);
  std::string target(r.path);
  if (!query.empty()) {
    target += '?';
    target += query;
  }
  if (!host.empty()) {
    std::string url;
    url.reserve(r.scheme.size() + 3 + host.size() + target.size());
    url.append(r.scheme).append("://").append(host).append(target);
    std::string redacted;
    Add(out, "http.url", RedactUrl(url, &redacted) ? redacted : url);
  }
  Add(out, "http.target", target);
  if (!r.remote_addr.empty()) Add(out, "net.peer.ip", r.remote_addr);
  int remote_port = ParsePort(r.remote_port);
  if (remote_port >= 0) Add(out, "net.peer.port", remote_port);
  if (!r.user_agent.empty()) Add(out, "http.user_agent", r.user_agent);
  if (!version.empty()) Add(out, "http.flavor", version);
}

}  // namespace

int ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return -1;
  int port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return -1;
    port = port * 10 + (c - '0');
  }
  return port <= 65535 ? port : -1;
}

HostPort SplitHostPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [v6] or [v6]:port
    size_t end = host.find(']');
    if (end != std::string_view::npos) {
      std::string_view rest = host.substr(end + 1);
      int port = rest.size() > 1 && rest.front() == ':' ? ParsePort(rest.substr(1)) : -1;
      return {host.substr(1, end - 1), port};
    }
  }
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view name = host.substr(0, colon);
    int port = ParsePort(host.substr(colon + 1));
    // A second colon means a bare IPv6 address, whose last group is not a port.
    if (port >= 0 && name.find(':') == std::string_view::npos) return {name, port};
  }
  return {host, -1};
}

std::string_view RegisteredMethod(std::string_view method) {
  for (std::string_view known : kKnownMethods) {
    if (known.size() != method.size()) continue;
    bool same = true;
    for (size_t i = 0; i < known.size() && same; ++i) {
      char c = method[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      same = c == known[i];
    }
    if (same) return known;
  }
  return {};
}

std::string_view AppendServerRequestAttributes(const ServerRequest& r,
                                               const ServerRequestOptions& options,
                                               Attributes* out) {
  std::string_view sent = r.method.empty() ? std::string_view("GET") : r.method;
  std::string_view method = RecordedMethod(sent, options);
  out->reserve(out->size() + (options.old_semconv ? 22 : 11));
  Add(out, "http.request.method", method);
  Add(out, "url.scheme", r.scheme);
  Add(out, "url.path", r.path);
  if (method != sent) Add(out, "http.request.method_original", sent);
  std::string query_storage;
  std::string_view query = RedactedQuery(r.query, &query_storage);
  if (!query.empty()) Add(out, "url.query", query);

  std::string_view host;
  int port = -1;
  if (!r.host_header.empty()) {
    HostPort hp = SplitHostPort(r.host_header);
    host = hp.host;
    port = hp.port;
  } else {
    host = r.server_name;
  }
  if (port < 0) port = ParsePort(r.server_port);
  if (port < 0) port = r.scheme == "https" ? 443 : 80;
  if (!host.empty()) Add(out, "server.address", host);
  Add(out, "server.port", port);

  std::string_view client = r.remote_addr;
  if (!r.forwarded_for.empty())
    client = Strip(r.forwarded_for.substr(0, r.forwarded_for.find(',')));
  if (!client.empty()) Add(out, "client.address", client);
  if (!r.user_agent.empty()) Add(out, "user_agent.original", r.user_agent);
  std::string_view version = r.protocol;
  size_t slash = version.rfind('/');
  if (slash != std::string_view::npos) version = version.substr(slash + 1);
  if (!version.empty()) Add(out, "network.protocol.version", version);
  if (options.old_semconv) AppendOldAttributes(r, method, query, version, out);
  return method == "_OTHER" ? std::string_view("HTTP") : method;
}

}  // namespace djtrace::http
