#include "export/otlp_exporter.h"

#include <unistd.h>

#include <algorithm>
#include <new>

#include "export/gzip.h"
#include "export/otlp_proto.h"
#include "export/utf8.h"

namespace djtrace {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReportedKeys = 64;
constexpr size_t kMaxExcerpt = 512;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

// "1 span", "4 spans": for the log lines.
std::string SpanCount(size_t n) { return std::to_string(n) + (n == 1 ? " span" : " spans"); }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A readable, bounded rendering of a response body or server message for a log line: control
// bytes become spaces or '.', ill-formed UTF-8 becomes U+FFFD, so that a binary or hostile body
// can neither garble the log nor fail the host's conversion to text.
std::string Excerpt(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxExcerpt) + 3);
  size_t i = 0;
  while (i < text.size() && i < kMaxExcerpt) {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data() + i);
    int step = Utf8Step(p, text.size() - i);
    if (step == 1) {
      const char c = static_cast<char>(*p);
      out += (*p >= 0x20 && *p < 0x7f) ? c : (c == '\n' || c == '\t' || c == '\r' ? ' ' : '.');
    } else if (step > 1) {
      out.append(text.substr(i, static_cast<size_t>(step)));
    } else {
      out += kUtf8Replacement;
      step = -step;
    }
    i += static_cast<size_t>(step);
  }
  if (i < text.size()) out += "...";
  return out;
}

// Describes an OTLP/HTTP error body: the message of the google.rpc.Status the specification
// asks receivers to send, else the text itself.
std::string DescribeHttpErrorBody(const HttpResponse& response) {
  if (response.body.empty()) return {};
  std::string_view type = response.Header("content-type");
  if (StartsWith(type, "application/x-protobuf") || StartsWith(type, "application/protobuf")) {
    RpcStatus status;
    if (ParseRpcStatus(response.body, status) && !status.message.empty()) {
      return Excerpt(status.message);
    }
  }
  return Excerpt(response.body);
}

// splitmix64: a tiny, well-mixed generator for jitter; no need for more.
uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t FreshSeed(const void* salt) {
  return static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
         (static_cast<uint64_t>(getpid()) << 32) ^ reinterpret_cast<uintptr_t>(salt);
}

// Forgets an object in a forked child without running its destructor: its memory may have been
// mid-update in a thread that no longer exists, so it is leaked rather than freed.
template <typename T>
void Forget(T& object) noexcept {
  new (&object) T();
}

bool IsReservedHttpHeader(std::string_view lower) {
  static constexpr std::string_view kReserved[] = {"host",
                                                   "content-length",
                                                   "content-type",
                                                   "content-encoding",
                                                   "transfer-encoding",
                                                   "connection",
                                                   "keep-alive",
                                                   "te",
                                                   "trailer",
                                                   "upgrade",
                                                   "proxy-connection"};
  for (auto r : kReserved)
    if (lower == r) return true;
  return false;
}

bool IsReservedGrpcMetadata(std::string_view lower) {
  static constexpr std::string_view kReserved[] = {
      "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive",
      "te",   "trailer",        "upgrade",      "proxy-connection"};
  if (StartsWith(lower, ":") || StartsWith(lower, "grpc-")) return true;
  for (auto r : kReserved)
    if (lower == r) return true;
  return false;
}

// Checks the user's headers; returns them lower-cased, reserved ones dropped (with a warning
// through `log`: they would break the protocol, and the exporter sets them itself).
bool ValidateHeaders(const std::vector<std::pair<std::string, std::string>>& headers, bool grpc,
                     const LogFn& log, std::vector<std::pair<std::string, std::string>>& out,
                     std::string& error) {
  for (const auto& [name, value] : headers) {
    if (!IsValidHttpHeaderName(name)) {
      error = "invalid header name \"" + Excerpt(name) + "\"";
      return false;
    }
    if (!IsValidHttpHeaderValue(value)) {
      error = "the value of header \"" + name + "\" contains a line break or NUL";
      return false;
    }
    std::string lower = LowerCopy(name);
    if (grpc ? IsReservedGrpcMetadata(lower) : IsReservedHttpHeader(lower)) {
      if (log) {
        try {
          log(kLogWarning,
              "ignoring the exporter header \"" + name + "\": the OTLP exporter sets it itself");
        } catch (...) {
        }
      }
      continue;
    }
    out.emplace_back(std::move(lower), value);
  }
  return true;
}

std::shared_ptr<const TlsContext> MakeTls(const OtlpExporterOptions& options, bool h2,
                                          std::string& error) {
  TlsOptions tls;
  tls.ca_file = options.certificate_file;
  tls.client_cert_file = options.client_certificate_file;
  tls.client_key_file = options.client_key_file;
  if (h2) tls.alpn = {"h2"};
  return TlsContext::Create(tls, error);
}

bool CheckCommonOptions(const OtlpExporterOptions& options, std::string& error) {
  if (options.timeout.count() < 0) {
    error = "the export timeout must not be negative";
    return false;
  }
  if (!IsValidHttpHeaderValue(options.user_agent)) {
    error = "the user agent contains a line break or NUL";
    return false;
  }
  const RetryPolicy& r = options.retry;
  if (r.initial_backoff.count() <= 0 || r.max_backoff < r.initial_backoff || r.multiplier < 1.0 ||
      r.jitter < 0.0 || r.jitter > 1.0) {
    error = "invalid retry policy";
    return false;
  }
  return true;
}

}  // namespace

bool ParseOtlpCompression(std::string_view text, OtlpCompression& out) noexcept {
  std::string lower;
  try {
    lower = LowerCopy(text);
  } catch (...) {
    return false;
  }
  while (!lower.empty() && lower.back() == ' ') lower.pop_back();
  while (!lower.empty() && lower.front() == ' ') lower.erase(0, 1);
  if (lower == "none" || lower.empty()) {
    out = OtlpCompression::kNone;
    return true;
  }
  if (lower == "gzip") {
    out = OtlpCompression::kGzip;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// OtlpExporterBase

OtlpExporterBase::OtlpExporterBase(OtlpExporterOptions& options, std::string protocol_name,
                                   std::string endpoint_text)
    : compression_(options.compression),
      protocol_name_(std::move(protocol_name)),
      endpoint_text_(std::move(endpoint_text)),
      log_(std::move(options.log)),
      retry_(options.retry),
      random_(std::move(options.random)),
      rng_state_(FreshSeed(this)),
      mu_(std::make_unique<std::mutex>()),
      timeout_(options.timeout),
      stats_mu_(std::make_unique<std::mutex>()) {}

OtlpExporterBase::~OtlpExporterBase() = default;

double OtlpExporterBase::NextRandom() noexcept {
  if (random_) {
    try {
      return random_();
    } catch (...) {
      return 0.5;
    }
  }
  return static_cast<double>(SplitMix(rng_state_) >> 11) * 0x1.0p-53;
}

ExportResult OtlpExporterBase::Export(std::span<const SpanData* const> spans,
                                      std::chrono::steady_clock::time_point deadline) noexcept {
  std::vector<LogLine> logs;
  ExportResult result = ExportResult::kFailure;
  try {
    std::lock_guard<std::mutex> lock(*mu_);
    result = ExportLocked(spans, deadline, logs);
  } catch (...) {  // std::bad_alloc while encoding or reporting
    batches_failed_.fetch_add(1, std::memory_order_relaxed);
    spans_failed_.fetch_add(spans.size(), std::memory_order_relaxed);
    result = ExportResult::kFailure;
  }
  // Outside the lock: the callback may wait for the GIL, whose holder may be in Shutdown().
  if (log_) {
    for (const LogLine& line : logs) {
      try {
        log_(line.level, line.message);
      } catch (...) {
      }
    }
  }
  return result;
}

bool OtlpExporterBase::WaitToRetry(Clock::time_point until) const noexcept {
  // Short steps rather than a second wake-up pipe: a backoff lasts a second or more, and
  // SetExiting is called once per process.
  constexpr auto kStep = std::chrono::milliseconds(50);
  for (;;) {
    const auto now = Clock::now();
    if (now >= until || exiting_.load(std::memory_order_acquire)) return true;
    if (!canceller_.SleepUntil(std::min(until, now + kStep))) return false;
  }
}

ExportResult OtlpExporterBase::ExportLocked(std::span<const SpanData* const> spans,
                                            std::chrono::steady_clock::time_point deadline,
                                            std::vector<LogLine>& logs) {
  if (shutdown_.load(std::memory_order_acquire)) {
    RecordFailure(spans.size(), "the exporter is shut down");
    ReportOnce("shutdown", false, kLogWarning,
               protocol_name_ + " exporter to " + endpoint_text_ +
                   " is shut down; dropping the spans handed to it since",
               logs);
    return ExportResult::kFailure;
  }
  if (spans.empty()) return ExportResult::kSuccess;

  auto now = Clock::now();
  if (timeout_.count() > 0) deadline = std::min(deadline, now + timeout_);
  if (deadline <= now) {
    // Sending now could only deliver a request the caller has already given up on.
    std::string message = protocol_name_ + " export of " + SpanCount(spans.size()) + " to " +
                          endpoint_text_ + " skipped: its deadline had passed before it started";
    RecordFailure(spans.size(), message);
    ++failed_since_success_;
    ReportOnce("deadline", true, kLogWarning, std::move(message), logs);
    return ExportResult::kFailure;
  }

  const std::string_view body(body_.data(), EncodeExportTraceServiceRequestReusing(spans, body_));
  std::string_view payload = body;
  if (compression_ == OtlpCompression::kGzip) {
    compressed_.clear();
    if (!GzipCompress(body, compressed_, kExportGzipLevel)) {
      std::string message = "gzip compression of the request failed";
      RecordFailure(spans.size(), message);
      ReportOnce("gzip", false, kLogError, protocol_name_ + " export: " + message, logs);
      return ExportResult::kFailure;
    }
    payload = compressed_;
  }

  const IoContext io{deadline, &canceller_};
  Outcome outcome;
  for (int retry = 0;; ++retry) {
    outcome = Outcome{};
    Attempt(payload, io, outcome);
    connections_.store(ConnectionsOpened(), std::memory_order_relaxed);
    if (outcome.ok) break;
    if (canceller_.cancelled()) {
      RecordFailure(spans.size(), "export cancelled by shutdown");
      return ExportResult::kFailure;
    }
    const bool exiting = exiting_.load(std::memory_order_acquire);
    if (outcome.retryable && !exiting) {
      now = Clock::now();
      std::optional<std::chrono::nanoseconds> delay = NextRetryDelay(
          retry_, retry, outcome.server_delay,
          std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now), NextRandom());
      if (delay) {
        retries_.fetch_add(1, std::memory_order_relaxed);
        // Cut short when the process starts exiting: then one more attempt, the last.
        if (!WaitToRetry(now + std::chrono::duration_cast<Clock::duration>(*delay))) {
          RecordFailure(spans.size(), "export cancelled by shutdown");
          return ExportResult::kFailure;
        }
        continue;
      }
    }
    std::string message = protocol_name_ + " export of " + SpanCount(spans.size()) + " to " +
                          endpoint_text_ + " failed: " + outcome.message;
    if (outcome.retryable) {
      const std::string attempts = std::to_string(retry + 1) + " attempt" + (retry ? "s" : "");
      message += exiting ? " (" + attempts + "; not retried: the process is exiting)"
                         : " (gave up after " + attempts + " within the export timeout)";
    }
    RecordFailure(spans.size(), message);
    ++failed_since_success_;
    ReportOnce(outcome.key, outcome.retryable, outcome.retryable ? kLogWarning : kLogError,
               std::move(message), logs);
    return ExportResult::kFailure;
  }

  batches_exported_.fetch_add(1, std::memory_order_relaxed);
  spans_exported_.fetch_add(spans.size(), std::memory_order_relaxed);
  if (!outcome.response.empty()) {
    ExportPartialSuccess partial;
    if (ParseExportTraceServiceResponse(outcome.response, partial) && partial.present()) {
      if (partial.rejected_spans > 0) {
        spans_rejected_.fetch_add(static_cast<uint64_t>(partial.rejected_spans),
                                  std::memory_order_relaxed);
      }
      // The receiver's wording is the distinguishing part; a varying count is not.
      ReportOnce("partial " + partial.error_message, false, kLogWarning,
                 protocol_name_ + " export to " + endpoint_text_ + ": the receiver rejected " +
                     std::to_string(partial.rejected_spans) + " of " + SpanCount(spans.size()) +
                     ": " + Excerpt(partial.error_message),
                 logs);
    }
  }
  // A failure reported earlier is over: say so once, and let the next outage be reported anew.
  const bool had_transient = std::any_of(reported_.begin(), reported_.end(),
                                         [](const Reported& r) { return r.transient; });
  if (had_transient) {
    std::erase_if(reported_, [](const Reported& r) { return r.transient; });
    logs.push_back({kLogInfo, protocol_name_ + " export to " + endpoint_text_ +
                                  " succeeded again after " +
                                  std::to_string(failed_since_success_) + " failed batches"});
  }
  failed_since_success_ = 0;
  return ExportResult::kSuccess;
}

void OtlpExporterBase::ReportOnce(std::string_view key, bool transient, int level,
                                  std::string message, std::vector<LogLine>& logs) {
  for (const Reported& r : reported_)
    if (r.key == key) return;
  if (reported_.size() >= kMaxReportedKeys) {
    if (!reported_overflow_) {
      reported_overflow_ = true;
      logs.push_back({kLogWarning, protocol_name_ + " exporter: too many distinct errors; "
                                                    "further ones are counted but not logged"});
    }
    return;
  }
  reported_.push_back({std::string(key), transient});
  logs.push_back({level, std::move(message)});
}

void OtlpExporterBase::RecordFailure(size_t span_count, const std::string& message) {
  batches_failed_.fetch_add(1, std::memory_order_relaxed);
  spans_failed_.fetch_add(span_count, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(*stats_mu_);
  last_error_ = message;
}

OtlpExporterStats OtlpExporterBase::stats() const {
  OtlpExporterStats s;
  s.batches_exported = batches_exported_.load(std::memory_order_relaxed);
  s.spans_exported = spans_exported_.load(std::memory_order_relaxed);
  s.batches_failed = batches_failed_.load(std::memory_order_relaxed);
  s.spans_failed = spans_failed_.load(std::memory_order_relaxed);
  s.retries = retries_.load(std::memory_order_relaxed);
  s.spans_rejected = spans_rejected_.load(std::memory_order_relaxed);
  s.connections = connections_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(*stats_mu_);
  s.last_error = last_error_;
  return s;
}

bool OtlpExporterBase::ForceFlush(std::chrono::steady_clock::time_point) noexcept {
  return true;  // nothing is buffered here: each Export() sends before it returns
}

void OtlpExporterBase::Shutdown() noexcept {
  shutdown_.store(true, std::memory_order_release);
  canceller_.Cancel();
  std::lock_guard<std::mutex> lock(*mu_);  // an export in flight ends promptly once cancelled
  CloseTransport();
}

void OtlpExporterBase::AfterForkInChild() noexcept {
  canceller_.AfterForkInChild();
  // A mutex the child cannot take was held by a parent thread that fork() did not copy: that
  // thread was exporting, and what it was updating cannot be trusted here.
  const bool torn = !mu_->try_lock();
  if (torn) {
    (void)mu_.release();
    mu_ = std::make_unique<std::mutex>();
    Forget(body_);
    Forget(compressed_);
    Forget(reported_);
  } else {
    mu_->unlock();
  }
  if (!stats_mu_->try_lock()) {
    (void)stats_mu_.release();
    stats_mu_ = std::make_unique<std::mutex>();
    Forget(last_error_);
  } else {
    stats_mu_->unlock();
  }
  ForgetTransportInChild(torn);
  rng_state_ = FreshSeed(this);  // siblings forked together should not jitter alike
}

// ---------------------------------------------------------------------------------------------
// OtlpHttpExporter

std::unique_ptr<OtlpHttpExporter> OtlpHttpExporter::Create(OtlpExporterOptions options,
                                                           std::string& error) {
  try {
    Endpoint endpoint;
    if (!ParseEndpoint(options.endpoint, EndpointKind::kHttp, endpoint, error)) return nullptr;
    if (!CheckCommonOptions(options, error)) return nullptr;
    std::vector<std::pair<std::string, std::string>> headers;
    if (!ValidateHeaders(options.headers, false, options.log, headers, error)) return nullptr;
    std::shared_ptr<const TlsContext> tls;
    if (endpoint.secure) {
      tls = MakeTls(options, false, error);
      if (!tls) return nullptr;
    }

    std::string block;
    AppendHttpHeader(block, "Content-Type", "application/x-protobuf");
    if (options.compression == OtlpCompression::kGzip) {
      AppendHttpHeader(block, "Content-Encoding", "gzip");
    }
    bool user_agent_given = false;
    for (const auto& [name, value] : headers) user_agent_given |= name == "user-agent";
    if (!user_agent_given && !options.user_agent.empty()) {
      AppendHttpHeader(block, "User-Agent", options.user_agent);
    }
    for (const auto& [name, value] : headers) AppendHttpHeader(block, name, value);

    return std::unique_ptr<OtlpHttpExporter>(
        new OtlpHttpExporter(options, endpoint, std::move(tls), std::move(block)));
  } catch (const std::bad_alloc&) {
    error = "out of memory";
    return nullptr;
  }
}

OtlpHttpExporter::OtlpHttpExporter(OtlpExporterOptions& options, const Endpoint& endpoint,
                                   std::shared_ptr<const TlsContext> tls, std::string header_block)
    : OtlpExporterBase(options, "OTLP/HTTP", endpoint.ToString()),
      path_(endpoint.path),
      header_block_(std::move(header_block)),
      client_(
          std::make_unique<HttpClient>(endpoint.host, endpoint.port, endpoint.Authority(), tls)),
      tls_(std::move(tls)),
      endpoint_(endpoint) {}

OtlpHttpExporter::~OtlpHttpExporter() = default;

void OtlpHttpExporter::Attempt(std::string_view payload, const IoContext& io, Outcome& out) {
  client_->Post(path_, header_block_, payload, io, result_);
  if (result_.error != NetError::kNone) {
    // TLS and protocol failures are configuration problems (wrong CA, http vs https, not an
    // OTLP endpoint): retrying them only delays the report.
    out.retryable = result_.error != NetError::kTls && result_.error != NetError::kProtocol &&
                    result_.error != NetError::kCancelled;
    out.key = std::string("net ") + std::string(NetErrorName(result_.error));
    out.message = result_.error_message;
    return;
  }
  const HttpResponse& response = result_.response;
  if (response.status >= 200 && response.status < 300) {
    out.ok = true;
    out.response = response.body;
    return;
  }
  out.retryable = IsRetryableHttpStatus(response.status);
  if (out.retryable) {
    std::string_view retry_after = response.Header("retry-after");
    if (!retry_after.empty()) {
      out.server_delay = ParseRetryAfter(retry_after, std::chrono::system_clock::now());
    }
  }
  out.key = "http " + std::to_string(response.status);
  out.message = "HTTP " + std::to_string(response.status);
  if (!response.reason.empty()) out.message += " " + Excerpt(response.reason);
  std::string detail = DescribeHttpErrorBody(response);
  if (!detail.empty()) out.message += ": " + detail;
}

uint64_t OtlpHttpExporter::ConnectionsOpened() const noexcept {
  return client_->connections_opened();
}

void OtlpHttpExporter::CloseTransport() noexcept { client_->Close(); }

void OtlpHttpExporter::ForgetTransportInChild(bool torn) noexcept {
  if (!torn) {
    client_->AfterForkInChild();
    return;
  }
  if (int fd = client_->native_handle(); fd >= 0) close(fd);
  (void)client_.release();
  Forget(result_);
  client_ =
      std::make_unique<HttpClient>(endpoint_.host, endpoint_.port, endpoint_.Authority(), tls_);
}

// ---------------------------------------------------------------------------------------------
// OtlpGrpcExporter

std::unique_ptr<OtlpGrpcExporter> OtlpGrpcExporter::Create(OtlpExporterOptions options,
                                                           std::string& error) {
  try {
    Endpoint endpoint;
    if (!ParseEndpoint(options.endpoint, EndpointKind::kGrpc, endpoint, error)) return nullptr;
    if (!CheckCommonOptions(options, error)) return nullptr;
    GrpcMetadata headers;
    if (!ValidateHeaders(options.headers, true, options.log, headers, error)) return nullptr;
    const bool secure = endpoint.has_scheme ? endpoint.secure : !options.insecure;
    std::shared_ptr<const TlsContext> tls;
    if (secure) {
      tls = MakeTls(options, true, error);
      if (!tls) return nullptr;
    }

    GrpcMetadata metadata;
    bool user_agent_given = false;
    for (const auto& [name, value] : headers) user_agent_given |= name == "user-agent";
    if (!user_agent_given && !options.user_agent.empty()) {
      metadata.emplace_back("user-agent", options.user_agent);
    }
    if (options.compression == OtlpCompression::kGzip) {
      metadata.emplace_back("grpc-encoding", "gzip");
    }
    for (auto& header : headers) metadata.push_back(std::move(header));
    return std::unique_ptr<OtlpGrpcExporter>(
        new OtlpGrpcExporter(options, endpoint, secure, std::move(tls), std::move(metadata)));
  } catch (const std::bad_alloc&) {
    error = "out of memory";
    return nullptr;
  }
}

OtlpGrpcExporter::OtlpGrpcExporter(OtlpExporterOptions& options, const Endpoint& endpoint,
                                   bool secure, std::shared_ptr<const TlsContext> tls,
                                   GrpcMetadata metadata)
    : OtlpExporterBase(options, "OTLP/gRPC",
                       (secure ? "https://" : "http://") + endpoint.Authority()),
      metadata_(std::move(metadata)),
      client_(
          std::make_unique<GrpcClient>(endpoint.host, endpoint.port, endpoint.Authority(), tls)),
      tls_(std::move(tls)),
      endpoint_(endpoint) {}

OtlpGrpcExporter::~OtlpGrpcExporter() = default;

void OtlpGrpcExporter::Attempt(std::string_view payload, const IoContext& io, Outcome& out) {
  client_->UnaryCall(kOtlpTraceExportPath, metadata_, payload,
                     compression_ == OtlpCompression::kGzip, io, result_);
  if (result_.error != NetError::kNone) {
    out.retryable = result_.error != NetError::kTls && result_.error != NetError::kProtocol &&
                    result_.error != NetError::kCancelled;
    out.key = std::string("net ") + std::string(NetErrorName(result_.error));
    out.message = result_.error_message;
    return;
  }
  if (result_.grpc_status == static_cast<int>(GrpcCode::kOk)) {
    out.ok = true;
    out.response = result_.response_message;
    return;
  }
  out.retryable = IsRetryableGrpcStatus(result_.grpc_status, result_.retry_delay.has_value());
  if (out.retryable) out.server_delay = result_.retry_delay;
  out.key = "grpc " + std::to_string(result_.grpc_status);
  out.message = "gRPC status " + std::string(GrpcCodeName(result_.grpc_status)) + " (" +
                std::to_string(result_.grpc_status) + ")";
  if (!result_.grpc_message.empty()) out.message += ": " + Excerpt(result_.grpc_message);
}

uint64_t OtlpGrpcExporter::ConnectionsOpened() const noexcept {
  return client_->connections_opened();
}

void OtlpGrpcExporter::CloseTransport() noexcept { client_->Close(); }

void OtlpGrpcExporter::ForgetTransportInChild(bool torn) noexcept {
  if (!torn) {
    client_->AfterForkInChild();
    return;
  }
  if (int fd = client_->native_handle(); fd >= 0) close(fd);
  (void)client_.release();
  Forget(result_);
  client_ =
      std::make_unique<GrpcClient>(endpoint_.host, endpoint_.port, endpoint_.Authority(), tls_);
}

}  // namespace djtrace
