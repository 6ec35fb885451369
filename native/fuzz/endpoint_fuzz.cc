// Fuzzes endpoint URL validation: never crashes, and whatever it accepts re-parses to the same
// endpoint from its own rendering.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "export/endpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto kind = data[0] & 1 ? djtrace::EndpointKind::kGrpc : djtrace::EndpointKind::kHttp;
  std::string_view url(reinterpret_cast<const char*>(data + 1), size - 1);
  djtrace::Endpoint endpoint;
  std::string error;
  if (!djtrace::ParseEndpoint(url, kind, endpoint, error)) {
    if (error.empty()) __builtin_trap();
    return 0;
  }
  if (endpoint.host.empty() || endpoint.port == 0 || endpoint.path.empty() ||
      endpoint.path[0] != '/') {
    __builtin_trap();
  }
  djtrace::Endpoint again;
  if (!djtrace::ParseEndpoint(endpoint.ToString(), kind, again, error)) __builtin_trap();
  if (again.host != endpoint.host || again.port != endpoint.port ||
      again.secure != endpoint.secure || again.path != endpoint.path) {
    __builtin_trap();
  }
  return 0;
}
