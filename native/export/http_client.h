// A small HTTP/1.1 client for OTLP/HTTP: one POST at a time over a kept-alive connection (TCP or
// TLS), every step bounded by the caller's deadline. What it keeps of a response is bounded too:
// status, headers and the first 64 KiB of the body, enough for an error excerpt or an
// ExportTraceServiceResponse.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "export/transport.h"

namespace djtrace {

inline constexpr size_t kDefaultMaxBodyKept = 64 * 1024;

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;        // the first max_body_kept bytes of the (de-chunked) body
  uint64_t body_size = 0;  // every body byte received
  bool keep_alive = true;  // false after "Connection: close", HTTP/1.0, or a close-delimited body

  // The first value of a header, by lower-case name; empty if absent.
  std::string_view Header(std::string_view lower_name) const noexcept;
  void Clear() noexcept;  // keeps capacity
};

// Incremental parser of one response (after any 1xx interim responses), fed bytes as they come.
// Accepts CRLF or bare LF line ends, chunked transfer coding with extensions and trailers,
// Content-Length, and bodies delimited by the connection's close.
class HttpResponseParser {
 public:
  enum class Status : uint8_t { kIncomplete, kComplete, kError };

  explicit HttpResponseParser(size_t max_body_kept = kDefaultMaxBodyKept) noexcept
      : max_body_kept_(max_body_kept) {}

  // Starts a new response, parsed into `out` (cleared here).
  void Reset(HttpResponse& out) noexcept;
  // Consumes a prefix of `data` and says how much in `consumed`; bytes after a complete
  // response are left unconsumed.
  Status Feed(std::string_view data, size_t& consumed);
  // The connection ended: completes a close-delimited body, otherwise an error.
  Status FinishAtEof();
  // True once any byte of the response has been fed.
  bool started() const noexcept { return started_; }
  const std::string& error() const noexcept { return error_; }

 private:
  enum class State : uint8_t {
    kStatusLine,
    kHeaderLine,
    kBodyLength,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailerLine,
    kBodyUntilClose,
    kDone,
    kError,
  };
  Status Fail(std::string message);
  bool FailLine(std::string message);
  bool OnLine(std::string_view line);
  bool OnStatusLine(std::string_view line);
  bool OnHeaderLine(std::string_view line);
  bool OnHeadersEnd();
  void OnBody(std::string_view bytes);

  size_t max_body_kept_;
  HttpResponse* out_ = nullptr;
  State state_ = State::kStatusLine;
  std::string line_;
  std::string error_;
  size_t header_bytes_ = 0;
  uint64_t remaining_ = 0;  // of the Content-Length body or of the current chunk
  bool started_ = false;
  bool http10_ = false;
  bool chunked_ = false;
  bool has_transfer_encoding_ = false;
  bool has_content_length_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
};

struct HttpResult {
  // kNone: `response` holds a complete response. Otherwise no usable response came back and
  // error_message says why.
  NetError error = NetError::kNone;
  std::string error_message;
  HttpResponse response;
};

// Header names are tokens; values must not contain CR, LF or NUL (header injection).
bool IsValidHttpHeaderName(std::string_view name) noexcept;
bool IsValidHttpHeaderValue(std::string_view value) noexcept;
// Appends "name: value\r\n" to a request header block.
void AppendHttpHeader(std::string& block, std::string_view name, std::string_view value);

class HttpClient {
 public:
  // `host_header` is the Host header value (Endpoint::Authority()); `tls` null for plaintext.
  HttpClient(std::string host, uint16_t port, std::string host_header,
             std::shared_ptr<const TlsContext> tls, size_t max_body_kept = kDefaultMaxBodyKept);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs `body` to `target` ("/v1/traces") with the headers in `header_block` (lines made by
  // AppendHttpHeader; Host and Content-Length are added here) and reads the response. Reuses
  // the kept-alive connection; if that turns out to have been closed by the server before it
  // answered, sends once more on a new connection.
  void Post(std::string_view target, std::string_view header_block, std::string_view body,
            const IoContext& io, HttpResult& result) noexcept;

  void Close() noexcept;
  // In a forked child: forget the parent's connection without sending anything on it.
  void AfterForkInChild() noexcept;
  uint64_t connections_opened() const noexcept { return connections_opened_; }
  // The socket, -1 if none: what a forked child must close when it cannot trust the rest.
  int native_handle() const noexcept { return conn_.native_handle(); }

 private:
  enum class Attempt : uint8_t { kDone, kRetryOnNewConnection };
  Attempt PostOnce(std::string_view target, std::string_view header_block, std::string_view body,
                   const IoContext& io, bool may_retry, HttpResult& result);

  std::string host_;
  uint16_t port_;
  std::string host_header_;
  std::shared_ptr<const TlsContext> tls_;
  Connection conn_;
  HttpResponseParser parser_;
  std::string head_;
  std::unique_ptr<char[]> read_buf_;
  uint64_t connections_opened_ = 0;
};

}  // namespace djtrace
