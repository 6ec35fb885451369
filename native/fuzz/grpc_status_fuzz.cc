// Fuzzes what a gRPC or OTLP server sends back that we decode: grpc-status-details-bin (base64
// of google.rpc.Status with RetryInfo), grpc-message percent-encoding, ExportTraceServiceResponse,
// and Retry-After values.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "export/grpc_client.h"
#include "export/retry.h"
#include "export/rpc_status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  djtrace::RpcStatus status;
  if (djtrace::ParseRpcStatus(text, status) && status.retry_delay &&
      (status.retry_delay->count() < 0 || *status.retry_delay > std::chrono::hours(24))) {
    __builtin_trap();
  }
  djtrace::ParseGrpcStatusDetails(text, status);
  djtrace::ExportPartialSuccess partial;
  djtrace::ParseExportTraceServiceResponse(text, partial);
  if (djtrace::PercentDecode(text).size() > text.size()) __builtin_trap();
  std::string decoded;
  if (djtrace::Base64Decode(text, decoded) && decoded.size() > text.size()) __builtin_trap();
  auto delay = djtrace::ParseRetryAfter(text, std::chrono::system_clock::now());
  if (delay && (delay->count() < 0 || *delay > std::chrono::hours(24))) __builtin_trap();
  return 0;
}
