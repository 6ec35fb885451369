// OTLP span exporters: OTLP/HTTP with protobuf bodies and OTLP/gRPC, as the OpenTelemetry
// Protocol specification and the OTEL_EXPORTER_OTLP_* variables describe them. Each Export()
// encodes the batch once, compresses it if asked, and sends it with retries (retry.h) until the
// export deadline. They run on the batch worker with no Python involved; failures reach the
// host through a log callback, once per distinct cause rather than once per batch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "export/endpoint.h"
#include "export/exporter.h"
#include "export/grpc_client.h"
#include "export/http_client.h"
#include "export/retry.h"
#include "export/rpc_status.h"
#include "export/transport.h"

namespace djtrace {

// Log levels, numbered as Python's logging module numbers them.
inline constexpr int kLogDebug = 10;
inline constexpr int kLogInfo = 20;
inline constexpr int kLogWarning = 30;
inline constexpr int kLogError = 40;

// Called from the exporting thread, never with an exporter lock held. Must not throw (anything
// thrown is swallowed).
using LogFn = std::function<void(int level, std::string_view message)>;

enum class OtlpCompression : uint8_t { kNone, kGzip };

// "none" or "gzip", as OTEL_EXPORTER_OTLP_COMPRESSION spells them; false for anything else.
bool ParseOtlpCompression(std::string_view text, OtlpCompression& out) noexcept;

inline constexpr std::string_view kDefaultOtlpUserAgent = "djtrace-otlp-exporter";

struct OtlpExporterOptions {
  // OTLP/HTTP: the full URL spans are POSTed to (".../v1/traces"). OTLP/gRPC: scheme://host:port
  // (a bare host:port means TLS unless `insecure`).
  std::string endpoint;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"authorization", "Bearer x"}
  OtlpCompression compression = OtlpCompression::kNone;
  // Bounds each Export() together with the deadline its caller passes (whichever comes first);
  // zero: the caller's deadline alone.
  std::chrono::milliseconds timeout{10000};
  std::string certificate_file;         // CA bundle to trust (OTEL_EXPORTER_OTLP_CERTIFICATE)
  std::string client_key_file;          // mTLS (OTEL_EXPORTER_OTLP_CLIENT_KEY)
  std::string client_certificate_file;  // mTLS (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)
  // gRPC only: plaintext for an endpoint without a scheme. An http:// or https:// scheme decides
  // by itself, for both protocols.
  bool insecure = false;
  std::string user_agent = std::string(kDefaultOtlpUserAgent);
  LogFn log;
  RetryPolicy retry;
  // Jitter source returning values in [0, 1); null: a per-exporter generator. For tests.
  std::function<double()> random;
};

struct OtlpExporterStats {
  uint64_t batches_exported = 0;
  uint64_t spans_exported = 0;
  uint64_t batches_failed = 0;
  uint64_t spans_failed = 0;
  uint64_t retries = 0;         // attempts beyond the first, across all batches
  uint64_t spans_rejected = 0;  // reported by the receiver in partial_success
  uint64_t connections = 0;     // connections opened (keep-alive makes this small)
  std::string last_error;       // the latest failure's description, empty if none yet
};

// What the HTTP and gRPC exporters share: batching into one request, retries, statistics,
// de-duplicated reporting, shutdown and fork handling. Not used directly.
class OtlpExporterBase : public SpanExporter {
 public:
  ~OtlpExporterBase() override;

  ExportResult Export(std::span<const SpanData* const> spans,
                      std::chrono::steady_clock::time_point deadline) noexcept final;
  bool ForceFlush(std::chrono::steady_clock::time_point deadline) noexcept final;
  // Cuts short an export in flight (its waits and I/O end at once), then closes the connection.
  // Later exports fail without sending.
  void Shutdown() noexcept final;
  void SetExiting(bool on) noexcept final { exiting_.store(on, std::memory_order_release); }
  void AfterForkInChild() noexcept final;
  // The protobuf encoder writes a shared block once per batch and copies its bytes after.
  bool TakesSharedAttributes() const noexcept final { return true; }

  OtlpExporterStats stats() const;
  // The endpoint as exported to, for messages ("http://localhost:4318/v1/traces").
  const std::string& endpoint_text() const noexcept { return endpoint_text_; }

 protected:
  // The result of one attempt to send a request.
  struct Outcome {
    bool ok = false;
    bool retryable = false;
    std::optional<std::chrono::nanoseconds> server_delay;  // Retry-After / RetryInfo
    std::string key;            // what makes two failures "the same" for reporting, e.g. "http 400"
    std::string message;        // a description for the log and stats
    std::string_view response;  // on success: ExportTraceServiceResponse bytes, if any
  };

  OtlpExporterBase(OtlpExporterOptions& options, std::string protocol_name,
                   std::string endpoint_text);

  // Sends one encoded (and maybe compressed) request.
  virtual void Attempt(std::string_view payload, const IoContext& io, Outcome& out) = 0;
  virtual uint64_t ConnectionsOpened() const noexcept = 0;
  virtual void CloseTransport() noexcept = 0;
  // In a forked child. `torn`: a parent thread was inside Export at fork time, so the
  // transport's memory may be mid-update; release it unread except for its descriptor.
  virtual void ForgetTransportInChild(bool torn) noexcept = 0;

  OtlpCompression compression_;

 private:
  struct LogLine {
    int level;
    std::string message;
  };
  ExportResult ExportLocked(std::span<const SpanData* const> spans,
                            std::chrono::steady_clock::time_point deadline,
                            std::vector<LogLine>& logs);
  void ReportOnce(std::string_view key, bool transient, int level, std::string message,
                  std::vector<LogLine>& logs);
  void RecordFailure(size_t span_count, const std::string& message);
  double NextRandom() noexcept;
  // Waits for a retry's turn; returns early once exiting_ is set (checked every few tens of
  // milliseconds), false if Shutdown cancelled the wait.
  bool WaitToRetry(std::chrono::steady_clock::time_point until) const noexcept;

  std::string protocol_name_;
  std::string endpoint_text_;
  LogFn log_;
  RetryPolicy retry_;
  std::function<double()> random_;
  uint64_t rng_state_;

  // Held for a whole Export; Shutdown takes it after cancelling. A pointer so that a child of
  // fork() can replace one held by a thread that does not exist there.
  std::unique_ptr<std::mutex> mu_;
  Canceller canceller_;
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> exiting_{false};  // SetExiting: no retries
  std::chrono::milliseconds timeout_;
  std::string body_;        // encoded request in its first bytes; only grows, never cleared
  std::string compressed_;  // gzip of the request in body_
  struct Reported {
    std::string key;
    bool transient;
  };
  std::vector<Reported> reported_;
  bool reported_overflow_ = false;
  uint64_t failed_since_success_ = 0;

  std::atomic<uint64_t> batches_exported_{0};
  std::atomic<uint64_t> spans_exported_{0};
  std::atomic<uint64_t> batches_failed_{0};
  std::atomic<uint64_t> spans_failed_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> spans_rejected_{0};
  std::atomic<uint64_t> connections_{0};
  mutable std::unique_ptr<std::mutex> stats_mu_;
  std::string last_error_;
};

// OTLP/HTTP, binary protobuf: POST application/x-protobuf to the endpoint URL.
class OtlpHttpExporter final : public OtlpExporterBase {
 public:
  // Validates everything (URL, headers, certificate files) up front; null with `error` set to
  // one sentence if something is wrong.
  static std::unique_ptr<OtlpHttpExporter> Create(OtlpExporterOptions options, std::string& error);
  ~OtlpHttpExporter() override;

 private:
  OtlpHttpExporter(OtlpExporterOptions& options, const Endpoint& endpoint,
                   std::shared_ptr<const TlsContext> tls, std::string header_block);
  void Attempt(std::string_view payload, const IoContext& io, Outcome& out) override;
  uint64_t ConnectionsOpened() const noexcept override;
  void CloseTransport() noexcept override;
  void ForgetTransportInChild(bool torn) noexcept override;

  std::string path_;
  std::string header_block_;
  std::unique_ptr<HttpClient> client_;
  std::shared_ptr<const TlsContext> tls_;
  Endpoint endpoint_;
  HttpResult result_;
};

// OTLP/gRPC: TraceService/Export over HTTP/2.
class OtlpGrpcExporter final : public OtlpExporterBase {
 public:
  static std::unique_ptr<OtlpGrpcExporter> Create(OtlpExporterOptions options, std::string& error);
  ~OtlpGrpcExporter() override;

 private:
  OtlpGrpcExporter(OtlpExporterOptions& options, const Endpoint& endpoint, bool secure,
                   std::shared_ptr<const TlsContext> tls, GrpcMetadata metadata);
  void Attempt(std::string_view payload, const IoContext& io, Outcome& out) override;
  uint64_t ConnectionsOpened() const noexcept override;
  void CloseTransport() noexcept override;
  void ForgetTransportInChild(bool torn) noexcept override;

  GrpcMetadata metadata_;
  std::unique_ptr<GrpcClient> client_;
  std::shared_ptr<const TlsContext> tls_;
  Endpoint endpoint_;
  GrpcCallResult result_;
};

}  // namespace djtrace
