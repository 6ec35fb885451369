#include "pii/key_rules.h"

namespace djtrace::pii {
namespace {

// These run for every attribute of every span, so they avoid library string searches and
// copies: one pass over the name, dispatching on its (lowercased) character.

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Whether lit (lowercase) occurs at s[i], ignoring ASCII case and reading '-' as '_'.
inline bool At(const char* s, size_t n, size_t i, const char* lit, size_t len) {
  if (n - i < len) return false;
  for (size_t k = 0; k < len; ++k) {
    const char c = s[i + k];
    if (c != lit[k] && Lower(c) != lit[k] && !(c == '-' && lit[k] == '_')) return false;
  }
  return true;
}
#define DJ_AT(i, lit) At(buf, n, (i), lit, sizeof(lit) - 1)
#define DJ_IS(lit) (n == sizeof(lit) - 1 && DJ_AT(0, lit))

bool StartsWithIgnoreCase(std::string_view s, const char* prefix, size_t len) {
  if (s.size() < len) return false;
  for (size_t i = 0; i < len; ++i) {
    if (Lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

bool IsSensitiveAttributeKey(std::string_view key) noexcept {
  std::string_view name = key;
  bool header = false;
  // Header and metadata attributes: the rest of the key is the header name, dots and all.
  if (key.size() > 19 && (Lower(key[0]) == 'h' || Lower(key[0]) == 'r')) {
    static constexpr std::string_view kPrefixes[] = {
        "http.request.header.",        "http.response.header.", "rpc.grpc.request.metadata.",
        "rpc.grpc.response.metadata.", "rpc.request.metadata.", "rpc.response.metadata.",
    };
    for (const auto& p : kPrefixes) {
      if (StartsWithIgnoreCase(key, p.data(), p.size())) {
        name = key.substr(p.size());
        header = true;
        break;
      }
    }
  }
  if (!header) {
    for (size_t i = key.size(); i > 0; --i) {
      if (key[i - 1] == '.') {
        name = key.substr(i);
        break;
      }
    }
  }
  if (name.empty()) return false;
  // Compared ignoring case, with '-' read as '_', without copying the name.
  const char* buf = name.data();
  const size_t n = name.size();
  switch (Lower(buf[0])) {
    case 'a':
      if (DJ_IS("authorization")) return true;
      break;
    case 'c':
      if (DJ_IS("cookie") || DJ_IS("cookies")) return true;
      break;
    case 'p':
      if (DJ_IS("proxy_authorization")) return true;
      break;
    case 's':
      if (DJ_IS("set_cookie")) return true;
      break;
    default:
      break;
  }
  for (size_t i = 0; i < n; ++i) {
    switch (Lower(buf[i])) {
      case 'a':  // api_key, apikey (x_api_key included)
        if (DJ_AT(i, "api_key") || DJ_AT(i, "apikey")) return true;
        break;
      case 'p':
        if (DJ_AT(i, "passw") && (DJ_AT(i, "password") || DJ_AT(i, "passwd"))) return true;
        if (DJ_AT(i, "private_key")) return true;
        break;
      case 's':
        if (DJ_AT(i, "secret")) return true;
        break;
      case 't':  // "token" ending a '_'-separated part
        if (DJ_AT(i, "token") && (i + 5 == n || buf[i + 5] == '_' || buf[i + 5] == '-')) {
          return true;
        }
        break;
      default:
        break;
    }
  }
  return false;
}

bool IsClientAddressKey(std::string_view key) noexcept {
  return key == "client.address" || key == "client.socket.address" || key == "http.client_ip" ||
         key == "net.sock.peer.addr" || key == "net.peer.ip";
}

bool IsEnduserKey(std::string_view key) noexcept {
  return key.substr(0, 8) == "enduser." || key.substr(0, 5) == "user.";
}

bool IsBuiltinAllowedKey(std::string_view key) noexcept {
  const size_t n = key.size();
  if (n < 5) return false;
  const char* buf = key.data();
  if (DJ_AT(0, "code.")) return true;
  if (n >= 7 && (At(buf, n, n - 7, "span_id", 7) || (n >= 8 && At(buf, n, n - 8, "trace_id", 8)))) {
    return true;
  }
  // Exact names, compared only against entries of the same length.
  static constexpr std::string_view kExact[] = {
      "db.collection.name",
      "db.operation.name",
      "db.system",
      "db.system.name",
      "http.request.method",
      "http.response.status_code",
      "http.route",
      "messaging.system",
      "network.protocol.name",
      "network.protocol.version",
      "network.transport",
      "network.type",
      "otel.scope.name",
      "otel.status_code",
      "rpc.method",
      "rpc.service",
      "rpc.system",
      // The service's own address (a host name or an IP of the database, cache, broker or
      // this server): infrastructure, not personal data.
      "server.address",
      "server.port",
      "thread.name",
      "url.scheme",
  };
  for (const auto& e : kExact) {
    if (e.size() == n && buf[0] == e[0] && e == key) return true;
  }
  return false;
}

#undef DJ_AT
#undef DJ_IS

}  // namespace djtrace::pii
