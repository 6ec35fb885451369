// When to retry an OTLP export, as the OTLP specification describes it: which HTTP statuses and
// gRPC codes are transient, exponential backoff with jitter, and the server's own pacing
// (Retry-After, google.rpc.RetryInfo) taking precedence. Pure functions: the randomness is a
// parameter, so a schedule is reproducible in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace djtrace {

struct RetryPolicy {
  std::chrono::nanoseconds initial_backoff = std::chrono::seconds(1);
  double multiplier = 2.0;
  std::chrono::nanoseconds max_backoff = std::chrono::seconds(32);
  // Each computed delay is scaled by a factor drawn uniformly from [1 - jitter, 1 + jitter), so
  // that many processes restarted together do not retry in lockstep.
  double jitter = 0.2;
  // A server asking for a shorter wait (or none) still gets this much, so that a collector
  // answering "Retry-After: 0" cannot turn the exporter into a busy loop.
  std::chrono::nanoseconds min_server_delay = std::chrono::milliseconds(100);
};

// The delay before retry number `retry` (0 for the first retry): initial * multiplier^retry,
// capped at max_backoff, then jittered with `unit_random` in [0, 1), capped again.
std::chrono::nanoseconds BackoffDelay(const RetryPolicy& policy, int retry,
                                      double unit_random) noexcept;

// Decides the wait before the next attempt after a retryable failure, or nullopt to give up
// because that attempt could not start before the export deadline (`time_left` from now).
// `server_delay` is what Retry-After or RetryInfo asked for; it replaces the backoff.
std::optional<std::chrono::nanoseconds> NextRetryDelay(
    const RetryPolicy& policy, int retry, std::optional<std::chrono::nanoseconds> server_delay,
    std::chrono::nanoseconds time_left, double unit_random) noexcept;

// OTLP/HTTP: 429, 502, 503 and 504 are retryable; everything else that is not 2xx is final.
bool IsRetryableHttpStatus(int status) noexcept;

// gRPC status codes (google.rpc.Code numbering).
enum class GrpcCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// The upper-case name gRPC uses ("UNAVAILABLE"), or "CODE_<n>" for unknown numbers.
std::string_view GrpcCodeName(int code) noexcept;

// OTLP/gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are
// retryable; RESOURCE_EXHAUSTED only when the server sent RetryInfo (otherwise it means the
// request can never fit).
bool IsRetryableGrpcStatus(int code, bool has_retry_info) noexcept;

// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date in any of the three forms
// RFC 9110 requires recipients to accept (IMF-fixdate, RFC 850, asctime). A date in the past
// gives zero. Returns nullopt for anything else.
std::optional<std::chrono::nanoseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept;

// Seconds since the Unix epoch of an HTTP-date, or nullopt. Exposed for tests.
std::optional<int64_t> ParseHttpDate(std::string_view value) noexcept;

}  // namespace djtrace
