#include "export/http_client.h"

#include <algorithm>

namespace djtrace {
namespace {

constexpr size_t kMaxLine = 16 * 1024;
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxHeaders = 128;
constexpr size_t kMaxReasonKept = 128;
constexpr size_t kReadBufSize = 16 * 1024;
constexpr uint64_t kMaxChunkSize = uint64_t{1} << 40;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}

std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Calls fn on each comma-separated element of a header value, trimmed, empties skipped.
template <typename Fn>
void ForEachListElement(std::string_view value, Fn fn) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view element = TrimOws(value.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace

std::string_view HttpResponse::Header(std::string_view lower_name) const noexcept {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return {};
}

void HttpResponse::Clear() noexcept {
  status = 0;
  reason.clear();
  headers.clear();
  body.clear();
  body_size = 0;
  keep_alive = true;
}

bool IsValidHttpHeaderName(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char c : name)
    if (!IsTokenChar(c)) return false;
  return true;
}

bool IsValidHttpHeaderValue(std::string_view value) noexcept {
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

void AppendHttpHeader(std::string& block, std::string_view name, std::string_view value) {
  block.append(name);
  block.append(": ");
  block.append(TrimOws(value));
  block.append("\r\n");
}

// ---------------------------------------------------------------------------------------------
// HttpResponseParser

void HttpResponseParser::Reset(HttpResponse& out) noexcept {
  out_ = &out;
  out.Clear();
  state_ = State::kStatusLine;
  line_.clear();
  error_.clear();
  header_bytes_ = 0;
  remaining_ = 0;
  started_ = false;
  http10_ = chunked_ = has_transfer_encoding_ = has_content_length_ = false;
  connection_close_ = connection_keep_alive_ = false;
}

HttpResponseParser::Status HttpResponseParser::Fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
  return Status::kError;
}

HttpResponseParser::Status HttpResponseParser::Feed(std::string_view data, size_t& consumed) {
  consumed = 0;
  if (state_ == State::kError) return Status::kError;
  if (!data.empty()) started_ = true;
  while (consumed < data.size() && state_ != State::kDone) {
    std::string_view rest = data.substr(consumed);
    switch (state_) {
      case State::kBodyLength:
      case State::kChunkData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
        OnBody(rest.substr(0, take));
        consumed += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
        }
        break;
      }
      case State::kBodyUntilClose:
        OnBody(rest);
        consumed += rest.size();
        break;
      default: {  // line-oriented states
        size_t nl = rest.find('\n');
        size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
        if (line_.size() + take > kMaxLine) return Fail("an HTTP response line is too long");
        if (state_ == State::kStatusLine || state_ == State::kHeaderLine ||
            state_ == State::kTrailerLine) {
          header_bytes_ += take;
          if (header_bytes_ > kMaxHeaderBytes)
            return Fail("the HTTP response headers are too large");
        }
        consumed += take;
        if (nl == std::string_view::npos) {
          line_.append(rest);
          break;
        }
        std::string_view line;
        if (line_.empty()) {
          line = rest.substr(0, nl);
        } else {
          line_.append(rest.substr(0, nl));
          line = line_;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool ok = OnLine(line);
        line_.clear();
        if (!ok) return Status::kError;
        break;
      }
    }
  }
  if (state_ == State::kDone) return Status::kComplete;
  return Status::kIncomplete;
}

HttpResponseParser::Status HttpResponseParser::FinishAtEof() {
  if (state_ == State::kBodyUntilClose || state_ == State::kDone) {
    state_ = State::kDone;
    return Status::kComplete;
  }
  if (state_ == State::kError) return Status::kError;
  if (!started_) return Fail("the connection closed before any response");
  return Fail("the connection closed in the middle of the response");
}

bool HttpResponseParser::FailLine(std::string message) {
  Fail(std::move(message));
  return false;
}

bool HttpResponseParser::OnLine(std::string_view line) {
  switch (state_) {
    case State::kStatusLine:
      return OnStatusLine(line);
    case State::kHeaderLine:
      return OnHeaderLine(line);
    case State::kChunkSize: {
      std::string_view size_text = TrimOws(line.substr(0, line.find(';')));
      if (size_text.empty()) return FailLine("an empty chunk size");
      uint64_t size = 0;
      for (char c : size_text) {
        int digit;
        if (c >= '0' && c <= '9') {
          digit = c - '0';
        } else if (c >= 'a' && c <= 'f') {
          digit = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
          digit = c - 'A' + 10;
        } else {
          return FailLine("an invalid chunk size");
        }
        size = size * 16 + static_cast<uint64_t>(digit);
        if (size > kMaxChunkSize) return FailLine("a chunk size too large");
      }
      if (size == 0) {
        state_ = State::kTrailerLine;
      } else {
        remaining_ = size;
        state_ = State::kChunkData;
      }
      return true;
    }
    case State::kChunkDataEnd:
      if (!line.empty()) return FailLine("chunk data longer than its size");
      state_ = State::kChunkSize;
      return true;
    case State::kTrailerLine:
      // Trailers are read and dropped: an OTLP response carries nothing we need in them.
      if (line.empty()) state_ = State::kDone;
      return true;
    default:
      return FailLine("internal parser state");
  }
}

bool HttpResponseParser::OnStatusLine(std::string_view line) {
  // HTTP/1.1 200 OK
  if (line.empty()) return true;  // tolerate a stray CRLF between responses (RFC 9112 2.2)
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ' ||
      (line[7] != '0' && line[7] != '1')) {
    return FailLine("not an HTTP/1.x response");
  }
  http10_ = line[7] == '0';
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return FailLine("an invalid HTTP status code");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || (line.size() > 12 && line[12] != ' ')) {
    return FailLine("an invalid HTTP status line");
  }
  out_->status = status;
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view();
  out_->reason.assign(reason.substr(0, kMaxReasonKept));
  state_ = State::kHeaderLine;
  return true;
}

bool HttpResponseParser::OnHeaderLine(std::string_view line) {
  if (line.empty()) return OnHeadersEnd();
  if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding: a continuation of the previous value.
    if (out_->headers.empty()) return FailLine("a folded line before any header");
    std::string& value = out_->headers.back().second;
    value += ' ';
    value += TrimOws(line);
    return true;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return FailLine("a header line without a colon");
  std::string_view name = line.substr(0, colon);
  if (!IsValidHttpHeaderName(name)) return FailLine("an invalid header name");
  std::string_view value = TrimOws(line.substr(colon + 1));
  if (out_->headers.size() >= kMaxHeaders) return FailLine("too many response headers");

  if (EqualsIgnoreCase(name, "content-length")) {
    uint64_t length = 0;
    if (value.empty() || value.size() > 18) return FailLine("an invalid Content-Length");
    for (char c : value) {
      if (c < '0' || c > '9') return FailLine("an invalid Content-Length");
      length = length * 10 + static_cast<uint64_t>(c - '0');
    }
    if (has_content_length_ && length != remaining_) {
      return FailLine("conflicting Content-Length headers");
    }
    has_content_length_ = true;
    remaining_ = length;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    has_transfer_encoding_ = true;
    // Only the last coding says how the message ends.
    std::string_view last;
    ForEachListElement(value, [&](std::string_view element) { last = element; });
    chunked_ = EqualsIgnoreCase(last, "chunked");
  } else if (EqualsIgnoreCase(name, "connection")) {
    ForEachListElement(value, [&](std::string_view element) {
      if (EqualsIgnoreCase(element, "close")) connection_close_ = true;
      if (EqualsIgnoreCase(element, "keep-alive")) connection_keep_alive_ = true;
    });
  }
  auto& header = out_->headers.emplace_back();
  header.first.resize(name.size());
  std::transform(name.begin(), name.end(), header.first.begin(), Lower);
  header.second.assign(value);
  return true;
}

bool HttpResponseParser::OnHeadersEnd() {
  const int status = out_->status;
  if (status >= 100 && status < 200) {
    if (status == 101) return FailLine("an unexpected protocol switch");
    // An interim response (100 Continue, 103 Early Hints): the real one follows.
    out_->Clear();
    http10_ = chunked_ = has_transfer_encoding_ = has_content_length_ = false;
    connection_close_ = connection_keep_alive_ = false;
    remaining_ = 0;
    header_bytes_ = 0;
    state_ = State::kStatusLine;
    return true;
  }
  out_->keep_alive = http10_ ? connection_keep_alive_ && !connection_close_ : !connection_close_;
  if (status == 204 || status == 304) {
    state_ = State::kDone;
  } else if (has_transfer_encoding_) {
    // Transfer-Encoding overrides Content-Length (RFC 9112 6.3); a sender doing both is
    // suspicious, so the connection is not reused.
    if (has_content_length_) out_->keep_alive = false;
    remaining_ = 0;
    if (chunked_) {
      state_ = State::kChunkSize;
    } else {
      state_ = State::kBodyUntilClose;
      out_->keep_alive = false;
    }
  } else if (has_content_length_) {
    state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
  } else {
    state_ = State::kBodyUntilClose;
    out_->keep_alive = false;
  }
  return true;
}

void HttpResponseParser::OnBody(std::string_view bytes) {
  out_->body_size += bytes.size();
  if (out_->body.size() < max_body_kept_) {
    out_->body.append(bytes.substr(0, max_body_kept_ - out_->body.size()));
  }
}

// ---------------------------------------------------------------------------------------------
// HttpClient

HttpClient::HttpClient(std::string host, uint16_t port, std::string host_header,
                       std::shared_ptr<const TlsContext> tls, size_t max_body_kept)
    : host_(std::move(host)),
      port_(port),
      host_header_(std::move(host_header)),
      tls_(std::move(tls)),
      parser_(max_body_kept),
      read_buf_(new char[kReadBufSize]) {}

HttpClient::~HttpClient() = default;

void HttpClient::Close() noexcept { conn_.Close(); }

void HttpClient::AfterForkInChild() noexcept { conn_.Abandon(); }

void HttpClient::Post(std::string_view target, std::string_view header_block, std::string_view body,
                      const IoContext& io, HttpResult& result) noexcept {
  try {
    if (PostOnce(target, header_block, body, io, true, result) == Attempt::kRetryOnNewConnection) {
      PostOnce(target, header_block, body, io, false, result);
    }
  } catch (...) {  // std::bad_alloc: report it like any other failure of this export
    conn_.Abandon();
    result.error = NetError::kIo;
    result.error_message = "out of memory";
  }
}

HttpClient::Attempt HttpClient::PostOnce(std::string_view target, std::string_view header_block,
                                         std::string_view body, const IoContext& io, bool may_retry,
                                         HttpResult& result) {
  result.error = NetError::kNone;
  result.error_message.clear();
  parser_.Reset(result.response);

  bool reused = false;
  if (conn_.is_open()) {
    if (conn_.IdleAndUsable()) {
      reused = true;
    } else {
      conn_.Close();
    }
  }
  if (!reused) {
    result.error = conn_.Open(host_, port_, tls_.get(), io, result.error_message);
    if (result.error != NetError::kNone) return Attempt::kDone;
    ++connections_opened_;
  }
  // A reused connection may have been closed by the server a moment ago (idle timeout). Such a
  // failure, before any byte of the answer, is safe to repeat once on a fresh connection.
  const bool may_repeat = reused && may_retry;

  head_.clear();
  head_.append("POST ");
  head_.append(target);
  head_.append(" HTTP/1.1\r\nHost: ");
  head_.append(host_header_);
  head_.append("\r\nContent-Length: ");
  head_.append(std::to_string(body.size()));
  head_.append("\r\n");
  head_.append(header_block);
  head_.append("\r\n");
  const std::string_view pieces[] = {head_, body};
  result.error = conn_.Write(pieces, io, result.error_message);
  if (result.error != NetError::kNone) {
    conn_.Close();
    if (may_repeat && (result.error == NetError::kIo || result.error == NetError::kClosed)) {
      return Attempt::kRetryOnNewConnection;
    }
    return Attempt::kDone;
  }

  for (;;) {
    size_t n = 0;
    NetError e = conn_.Read(read_buf_.get(), kReadBufSize, n, io, result.error_message);
    HttpResponseParser::Status status;
    size_t consumed = 0;
    if (e == NetError::kClosed) {
      if (!parser_.started() && may_repeat) {
        conn_.Close();
        return Attempt::kRetryOnNewConnection;
      }
      status = parser_.FinishAtEof();
      conn_.Close();
      if (status == HttpResponseParser::Status::kComplete) {
        result.error_message.clear();
        return Attempt::kDone;
      }
      result.error = NetError::kClosed;
      result.error_message = parser_.error();
      return Attempt::kDone;
    }
    if (e != NetError::kNone) {
      conn_.Close();
      if (e == NetError::kIo && !parser_.started() && may_repeat) {
        return Attempt::kRetryOnNewConnection;  // ECONNRESET on a stale connection
      }
      result.error = e;
      if (e == NetError::kTimeout) result.error_message = "timed out waiting for the response";
      return Attempt::kDone;
    }
    status = parser_.Feed(std::string_view(read_buf_.get(), n), consumed);
    if (status == HttpResponseParser::Status::kError) {
      conn_.Close();
      result.error = NetError::kProtocol;
      result.error_message = "invalid HTTP response: " + parser_.error();
      return Attempt::kDone;
    }
    if (status == HttpResponseParser::Status::kComplete) {
      // Bytes beyond the response mean the server and we disagree about framing.
      if (!result.response.keep_alive || consumed != n) conn_.Close();
      return Attempt::kDone;
    }
  }
}

}  // namespace djtrace
