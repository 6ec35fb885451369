#include "trace/w3c.h"

namespace djtrace {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not allowed by the specification
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/' || c == '@';
}

bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool ValidKey(std::string_view key) {
  if (key.empty() || key.size() > 256) return false;
  auto at = key.find('@');
  if (at == std::string_view::npos) {
    // Trace Context Level 1, which opentelemetry-api follows:
    // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" ): no leading digit.
    if (!IsLcAlpha(key[0])) return false;
    for (char c : key)
      if (!IsKeyChar(c) || c == '@') return false;
    return true;
  }
  // multi-tenant-key = tenant-id "@" system-id, where only the tenant may start with a digit.
  std::string_view tenant = key.substr(0, at), system = key.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || system.empty() || system.size() > 14) return false;
  if (!IsLcAlpha(tenant[0]) && !IsDigit(tenant[0])) return false;
  for (char c : tenant)
    if (!IsKeyChar(c) || c == '@') return false;
  if (!IsLcAlpha(system[0])) return false;
  for (char c : system)
    if (!IsKeyChar(c) || c == '@') return false;
  return true;
}

bool ValidValue(std::string_view value) {
  if (value.empty() || value.size() > 256) return false;
  for (char c : value)
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  return value.back() != ' ';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool FromHex(std::string_view hex, uint8_t* out, size_t n) noexcept {
  if (hex.size() != 2 * n) return false;
  for (size_t i = 0; i < n; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string ToHex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[data[i] >> 4];
    s[2 * i + 1] = kDigits[data[i] & 0xF];
  }
  return s;
}

bool ParseTraceparent(std::string_view h, Traceparent& out) noexcept {
  // opentelemetry-api ignores longer headers before parsing (its _TRACEPARENT_MAXIMUM_LENGTH);
  // doing the same keeps both sides agreeing on which requests continue a trace.
  if (h.size() > kMaxTraceparentLength) return false;
  h = Trim(h);
  if (h.size() < 55) return false;
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  uint8_t version;
  if (!FromHex(h.substr(0, 2), &version, 1) || version == 0xff) return false;
  if (version == 0 && h.size() != 55) return false;
  if (h.size() > 55 && h[55] != '-') return false;  // later versions append "-..." only
  Traceparent tp;
  if (!FromHex(h.substr(3, 32), tp.trace_id.data(), 16)) return false;
  if (!FromHex(h.substr(36, 16), tp.span_id.data(), 8)) return false;
  if (!FromHex(h.substr(53, 2), &tp.flags, 1)) return false;
  if (IsZero(tp.trace_id) || IsZero(tp.span_id)) return false;
  out = tp;
  return true;
}

std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags) {
  std::string s;
  s.reserve(55);
  s += "00-";
  s += ToHex(trace_id.data(), 16);
  s += '-';
  s += ToHex(span_id.data(), 8);
  s += '-';
  s += ToHex(&flags, 1);
  return s;
}

bool NormalizeTracestate(std::string_view header, std::string& out) {
  out.clear();
  // A malformed header is dropped whole: `out` is left empty rather than half-built.
  auto invalid = [&out] {
    out.clear();
    return false;
  };
  if (header.size() > kMaxTracestateLength) return false;
  // Keys seen so far, to refuse duplicates as the specification and opentelemetry-api do. At
  // most 32 members, so a linear scan beats any set.
  std::string_view keys[32];
  int members = 0;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view member = Trim(header.substr(pos, comma - pos));
    pos = comma + 1;
    if (member.empty()) {
      if (comma == header.size()) break;
      continue;
    }
    auto eq = member.find('=');
    if (eq == std::string_view::npos) return invalid();
    std::string_view key = member.substr(0, eq);
    if (!ValidKey(key) || !ValidValue(member.substr(eq + 1))) return invalid();
    if (members == 32) return invalid();
    for (int i = 0; i < members; ++i)
      if (keys[i] == key) return invalid();
    keys[members++] = key;
    if (!out.empty()) out += ',';
    out.append(member);
    if (comma == header.size()) break;
  }
  return true;
}

}  // namespace djtrace
