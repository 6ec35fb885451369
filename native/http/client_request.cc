#include "http/client_request.h"

#include "http/server_request.h"
#include "http/url.h"

namespace djtrace::http {
namespace {

int DefaultPort(std::string_view scheme) {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  return -1;
}

}  // namespace

bool IsIpv6Address(std::string_view text) {
  const size_t percent = text.find('%');
  if (percent != std::string_view::npos) {
    if (percent + 1 == text.size()) return false;  // an empty zone
    text = text.substr(0, percent);
  }
  // An IPv4 dotted quad in place of the last two groups.
  int groups_max = 8;
  const size_t last_colon = text.rfind(':');
  if (last_colon != std::string_view::npos &&
      text.find('.', last_colon) != std::string_view::npos) {
    std::string_view v4 = text.substr(last_colon + 1);
    int parts = 0;
    size_t i = 0;
    while (i <= v4.size()) {
      size_t dot = v4.find('.', i);
      if (dot == std::string_view::npos) dot = v4.size();
      std::string_view part = v4.substr(i, dot - i);
      if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
      int value = 0;
      for (char c : part) {
        if (!IsAsciiDigit(c)) return false;
        value = value * 10 + (c - '0');
      }
      if (value > 255) return false;
      ++parts;
      i = dot + 1;
    }
    if (parts != 4) return false;
    text = text.substr(0, last_colon + 1);
    groups_max = 6;
    if (text.size() >= 2 && text.substr(text.size() - 2) == "::") {
      // "::1.2.3.4": the "::" stands for the groups before the quad.
    } else {
      text = text.substr(0, text.size() - 1);  // the ':' before the quad
    }
  }
  const size_t gap = text.find("::");
  if (gap != std::string_view::npos && text.find("::", gap + 1) != std::string_view::npos)
    return false;
  auto count_groups = [](std::string_view s, int* n) {
    if (s.empty()) return true;
    size_t i = 0;
    while (true) {
      size_t colon = s.find(':', i);
      std::string_view g = s.substr(i, colon == std::string_view::npos ? s.npos : colon - i);
      if (g.empty() || g.size() > 4) return false;
      for (char c : g)
        if (!IsAsciiHexDigit(c)) return false;
      ++*n;
      if (colon == std::string_view::npos) return true;
      i = colon + 1;
    }
  };
  int groups = 0;
  if (gap == std::string_view::npos) {
    return !text.empty() && count_groups(text, &groups) && groups == groups_max;
  }
  if (!count_groups(text.substr(0, gap), &groups) || !count_groups(text.substr(gap + 2), &groups))
    return false;
  return groups < groups_max;
}

UrlAuthority SplitUrlAuthority(std::string_view raw) {
  UrlAuthority out;
  // urlsplit drops leading C0 controls and spaces, and every tab, CR and LF.
  size_t begin = 0;
  while (begin < raw.size() && static_cast<unsigned char>(raw[begin]) <= 0x20) ++begin;
  std::string url;
  url.reserve(raw.size() - begin);
  for (size_t i = begin; i < raw.size(); ++i)
    if (raw[i] != '\t' && raw[i] != '\r' && raw[i] != '\n') url.push_back(raw[i]);

  std::string_view rest = url;
  const size_t colon = rest.find(':');
  if (colon != std::string_view::npos && colon > 0 && IsAsciiLetter(rest[0])) {
    bool scheme_chars = true;
    for (size_t i = 0; i < colon && scheme_chars; ++i) scheme_chars = IsSchemeChar(rest[i]);
    if (scheme_chars) {
      for (size_t i = 0; i < colon; ++i) out.scheme.push_back(LowerAscii(rest[i]));
      rest.remove_prefix(colon + 1);
    }
  }
  if (rest.substr(0, 2) != "//") return out;
  std::string_view netloc = rest.substr(2, rest.find_first_of("/?#", 2) - 2);
  const size_t open = netloc.find('[');
  const size_t close = netloc.find(']');
  if ((open == std::string_view::npos) != (close == std::string_view::npos)) {
    out.valid = false;  // "Invalid IPv6 URL"
    return out;
  }
  if (open != std::string_view::npos) {
    // The text between the first '[' and the first ']' after it must be an address.
    std::string_view inside = netloc.substr(open + 1);
    inside = inside.substr(0, inside.find(']'));
    bool future = false;
    if (!inside.empty() && inside[0] == 'v') {
      const size_t dot = inside.find('.', 1);
      future = dot != std::string_view::npos && dot > 1 && dot + 1 < inside.size();
      for (size_t i = 1; future && i < dot; ++i) future = IsAsciiHexDigit(inside[i]);
      if (!future) {
        out.valid = false;
        return out;
      }
    } else if (!IsIpv6Address(inside)) {
      out.valid = false;
      return out;
    }
  }

  // netloc.rpartition('@'), then the bracketed host or host:port.
  const size_t at = netloc.rfind('@');
  std::string_view hostinfo = at == std::string_view::npos ? netloc : netloc.substr(at + 1);
  std::string_view host, port;
  const size_t bracket = hostinfo.find('[');
  if (bracket != std::string_view::npos) {
    std::string_view bracketed = hostinfo.substr(bracket + 1);
    const size_t end = bracketed.find(']');
    host = bracketed.substr(0, end);
    if (end != std::string_view::npos) {
      std::string_view after = bracketed.substr(end + 1);
      const size_t c = after.find(':');
      if (c != std::string_view::npos) port = after.substr(c + 1);
    }
  } else {
    const size_t c = hostinfo.find(':');
    host = hostinfo.substr(0, c);
    if (c != std::string_view::npos) port = hostinfo.substr(c + 1);
  }
  const size_t zone = host.find('%');
  for (size_t i = 0; i < host.size(); ++i)
    out.host.push_back(i < zone ? LowerAscii(host[i]) : host[i]);

  if (!port.empty()) {
    // int(port): ASCII digits, leading zeros allowed ("000080"), at most 65535.
    const size_t first = port.find_first_not_of('0');
    const int value = first == std::string_view::npos ? 0 : ParsePort(port.substr(first));
    if (value >= 0) {
      out.port = value;
    } else {
      out.port_invalid = true;
    }
  }
  return out;
}

std::string AppendClientRequestAttributes(std::string_view method, std::string_view url,
                                          bool old_semconv, Attributes* out) {
  if (method.empty()) method = "GET";
  const std::string_view registered = RegisteredMethod(method);
  const std::string_view recorded = registered.empty() ? std::string_view("_OTHER") : registered;
  std::string full;
  if (!RedactUrl(url, &full)) full.assign(url);
  out->push_back(Attribute{"http.request.method", AttrValue(std::string(recorded))});
  out->push_back(Attribute{"url.full", AttrValue(full)});
  if (registered.empty())
    out->push_back(Attribute{"http.request.method_original", AttrValue(std::string(method))});

  const UrlAuthority authority = SplitUrlAuthority(url);
  // As `parts.port or default`: port 0 counts as absent; where urlsplit or .port raise, the
  // integration recorded no port.
  int port = -1;
  if (authority.valid && !authority.port_invalid)
    port = authority.port > 0 ? authority.port : DefaultPort(authority.scheme);
  if (!authority.host.empty())
    out->push_back(Attribute{"server.address", AttrValue(authority.host)});
  if (port > 0) out->push_back(Attribute{"server.port", AttrValue(static_cast<int64_t>(port))});
  if (old_semconv) {
    out->push_back(Attribute{"http.method", AttrValue(std::string(recorded))});
    out->push_back(Attribute{"http.url", AttrValue(std::move(full))});
    if (!authority.host.empty())
      out->push_back(Attribute{"net.peer.name", AttrValue(authority.host)});
    if (port > 0) out->push_back(Attribute{"net.peer.port", AttrValue(static_cast<int64_t>(port))});
  }
  return registered.empty() ? std::string("HTTP") : std::string(registered);
}

}  // namespace djtrace::http
