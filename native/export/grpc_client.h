// A gRPC unary call over HTTP/2 (nghttp2), enough for OTLP/gRPC's one method: h2c with prior
// knowledge for plaintext, TLS with ALPN "h2" otherwise. One call at a time over a connection
// kept open across calls; GOAWAY, refused streams and connections found dead are handled by
// reconnecting.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "export/rpc_status.h"
#include "export/transport.h"

struct nghttp2_session;

namespace djtrace {

inline constexpr std::string_view kOtlpTraceExportPath =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

using GrpcMetadata = std::vector<std::pair<std::string, std::string>>;

struct GrpcCallResult {
  // kNone: the call got a gRPC status (from trailers, or derived from the HTTP status or a
  // stream reset as the gRPC spec says). Otherwise the transport failed and error_message says
  // how.
  NetError error = NetError::kNone;
  std::string error_message;
  int http_status = 0;
  int grpc_status = 0;
  bool grpc_status_received = false;                    // false when grpc_status was derived
  std::string grpc_message;                             // percent-decoded
  std::optional<std::chrono::nanoseconds> retry_delay;  // from RetryInfo in status details
  std::string response_message;  // the first response message, if uncompressed (bounded)
};

// grpc-timeout value: at most 8 digits and a unit, rounded up so the server never gives up
// before we do ("1500m", "30S", ...). Non-positive durations give "1n".
std::string FormatGrpcTimeout(std::chrono::nanoseconds timeout);
// Decodes grpc-message's percent-encoding; malformed escapes are kept literally.
std::string PercentDecode(std::string_view value);
// Standard base64, padded or not (gRPC sends -bin headers unpadded). False on bad input.
bool Base64Decode(std::string_view in, std::string& out);
// grpc-status-details-bin: base64 of a google.rpc.Status.
bool ParseGrpcStatusDetails(std::string_view header_value, RpcStatus& out);
// The gRPC code for an HTTP status when no grpc-status came (gRPC's http-grpc-status-mapping).
int GrpcStatusFromHttpStatus(int http_status) noexcept;
// The gRPC code for an HTTP/2 RST_STREAM error code.
int GrpcStatusFromHttp2Error(uint32_t error_code) noexcept;

class GrpcClient {
 public:
  // `authority` is the :authority value (Endpoint::Authority()); `tls` null for h2c. A TLS
  // context must offer ALPN "h2".
  GrpcClient(std::string host, uint16_t port, std::string authority,
             std::shared_ptr<const TlsContext> tls);
  ~GrpcClient();
  GrpcClient(const GrpcClient&) = delete;
  GrpcClient& operator=(const GrpcClient&) = delete;

  // One unary call: `message` (already compressed if `compressed`; then the metadata should say
  // grpc-encoding) with pseudo-headers, content-type, te and grpc-timeout added here, and
  // `metadata` (lower-case names) after them.
  void UnaryCall(std::string_view path, const GrpcMetadata& metadata, std::string_view message,
                 bool compressed, const IoContext& io, GrpcCallResult& result) noexcept;

  // Sends GOAWAY if it can without waiting, then closes.
  void Close() noexcept;
  // In a forked child: forget the parent's connection without sending anything on it.
  void AfterForkInChild() noexcept;
  uint64_t connections_opened() const noexcept { return connections_opened_; }
  // The socket, -1 if none: what a forked child must close when it cannot trust the rest.
  int native_handle() const noexcept { return conn_.native_handle(); }

  struct Call;          // the call in flight
  struct SessionState;  // what nghttp2's callbacks update

 private:
  enum class Attempt : uint8_t { kDone, kRetryOnNewConnection };
  Attempt CallOnce(std::string_view path, const GrpcMetadata& metadata, std::string_view message,
                   bool compressed, const IoContext& io, bool may_retry, GrpcCallResult& result);
  NetError EnsureSession(const IoContext& io, bool& reused, std::string& error);
  NetError CreateSession(std::string& error);
  // Moves what nghttp2 wants to send onto the wire.
  NetError Flush(const IoContext& io, std::string& error);
  // Feeds bytes read from the wire to nghttp2.
  NetError Receive(const char* data, size_t len, std::string& error);
  void DropSession() noexcept;

  std::string host_;
  uint16_t port_;
  std::string authority_;
  std::shared_ptr<const TlsContext> tls_;
  Connection conn_;
  nghttp2_session* session_ = nullptr;
  std::unique_ptr<SessionState> state_;
  std::string out_;
  std::unique_ptr<char[]> read_buf_;
  uint64_t connections_opened_ = 0;
};

}  // namespace djtrace
