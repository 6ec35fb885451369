#include "export/grpc_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>

#include "export/retry.h"

namespace djtrace {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBufSize = 16 * 1024;
constexpr size_t kOutFlushSize = 64 * 1024;
constexpr size_t kMaxResponseKept = 64 * 1024;
constexpr size_t kMaxGrpcMessageKept = 4096;
constexpr size_t kMaxStatusDetailsKept = 16 * 1024;
constexpr auto kGoawayGrace = std::chrono::milliseconds(100);

std::string_view View(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet, seen in the wild
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

struct GrpcClient::Call {
  int32_t stream_id = -1;
  char prefix[5] = {};
  std::string_view message;
  size_t sent = 0;  // bytes of prefix + message handed to nghttp2
  bool closed = false;
  uint32_t close_error = 0;
  bool headers_received = false;
  int http_status = 0;
  bool grpc_status_received = false;
  int grpc_status = 0;
  std::string grpc_message;
  std::string status_details;
  std::string content_type;
  std::string data;
};

struct GrpcClient::SessionState {
  Call* call = nullptr;
  bool goaway = false;
  std::string last_error;  // nghttp2's own explanation of the latest protocol error
};

namespace {

using Call = GrpcClient::Call;
using SessionState = GrpcClient::SessionState;

ssize_t ReadRequestBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                        uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto* call = static_cast<Call*>(source->ptr);
  const size_t total = sizeof(call->prefix) + call->message.size();
  size_t n = 0;
  while (n < length && call->sent < total) {
    if (call->sent < sizeof(call->prefix)) {
      size_t take = std::min(length - n, sizeof(call->prefix) - call->sent);
      std::copy_n(call->prefix + call->sent, take, buf + n);
      n += take;
      call->sent += take;
    } else {
      size_t offset = call->sent - sizeof(call->prefix);
      size_t take = std::min(length - n, call->message.size() - offset);
      std::copy_n(call->message.data() + offset, take, buf + n);
      n += take;
      call->sent += take;
    }
  }
  if (call->sent == total) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  Call* call = static_cast<SessionState*>(user_data)->call;
  if (!call || frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != call->stream_id) {
    return 0;
  }
  // No exception may cross nghttp2's C frames: an allocation failure fails the session.
  try {
    std::string_view n = View(name, namelen);
    std::string_view v = View(value, valuelen);
    if (n == ":status") {
      int status = 0;
      for (char c : v) status = (c >= '0' && c <= '9') ? status * 10 + (c - '0') : -1000;
      if (status >= 200) {
        call->http_status = status;
        call->headers_received = true;
      }
    } else if (n == "grpc-status") {
      int code = 0;
      bool valid = !v.empty() && v.size() <= 4;
      for (char c : v) {
        if (c < '0' || c > '9') valid = false;
        code = code * 10 + (c - '0');
      }
      call->grpc_status_received = true;
      call->grpc_status = valid ? code : static_cast<int>(GrpcCode::kUnknown);
      call->headers_received = true;
    } else if (n == "grpc-message") {
      call->grpc_message = PercentDecode(v.substr(0, kMaxGrpcMessageKept * 3));
      if (call->grpc_message.size() > kMaxGrpcMessageKept) {
        call->grpc_message.resize(kMaxGrpcMessageKept);
      }
    } else if (n == "grpc-status-details-bin") {
      call->status_details.assign(v.substr(0, kMaxStatusDetailsKept));
    } else if (n == "content-type") {
      call->content_type.assign(v.substr(0, 128));
    }
  } catch (...) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                void* user_data) {
  Call* call = static_cast<SessionState*>(user_data)->call;
  if (!call || stream_id != call->stream_id) return 0;
  try {
    if (call->data.size() < kMaxResponseKept) {
      call->data.append(View(data, std::min(len, kMaxResponseKept - call->data.size())));
    }
  } catch (...) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
  Call* call = static_cast<SessionState*>(user_data)->call;
  if (call && stream_id == call->stream_id) {
    call->closed = true;
    call->close_error = error_code;
  }
  return 0;
}

int OnError(nghttp2_session*, int, const char* msg, size_t len, void* user_data) {
  try {
    static_cast<SessionState*>(user_data)->last_error.assign(msg, std::min<size_t>(len, 256));
  } catch (...) {
  }
  return 0;
}

int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<SessionState*>(user_data)->goaway = true;
  return 0;
}

}  // namespace

std::string FormatGrpcTimeout(std::chrono::nanoseconds timeout) {
  const int64_t ns = timeout.count();
  if (ns <= 0) return "1n";
  struct Unit {
    char name;
    int64_t ns;
  };
  static constexpr Unit kUnits[] = {{'n', 1},
                                    {'u', 1000},
                                    {'m', 1000000},
                                    {'S', 1000000000},
                                    {'M', int64_t{60} * 1000000000},
                                    {'H', int64_t{3600} * 1000000000}};
  for (const Unit& unit : kUnits) {
    int64_t value = ns / unit.ns + (ns % unit.ns != 0 ? 1 : 0);
    if (value < 100000000) return std::to_string(value) + unit.name;
  }
  return "99999999H";
}

std::string PercentDecode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size()) {
      int hi = HexValue(value[i + 1]);
      int lo = HexValue(value[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += value[i];
  }
  return out;
}

bool Base64Decode(std::string_view in, std::string& out) {
  out.clear();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

bool ParseGrpcStatusDetails(std::string_view header_value, RpcStatus& out) {
  std::string bytes;
  return Base64Decode(header_value, bytes) && ParseRpcStatus(bytes, out);
}

int GrpcStatusFromHttpStatus(int http_status) noexcept {
  switch (http_status) {
    case 400:
      return static_cast<int>(GrpcCode::kInternal);
    case 401:
      return static_cast<int>(GrpcCode::kUnauthenticated);
    case 403:
      return static_cast<int>(GrpcCode::kPermissionDenied);
    case 404:
      return static_cast<int>(GrpcCode::kUnimplemented);
    case 429:
    case 502:
    case 503:
    case 504:
      return static_cast<int>(GrpcCode::kUnavailable);
    default:
      return static_cast<int>(GrpcCode::kUnknown);
  }
}

int GrpcStatusFromHttp2Error(uint32_t error_code) noexcept {
  switch (error_code) {
    case NGHTTP2_REFUSED_STREAM:
      return static_cast<int>(GrpcCode::kUnavailable);
    case NGHTTP2_CANCEL:
      return static_cast<int>(GrpcCode::kCancelled);
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return static_cast<int>(GrpcCode::kResourceExhausted);
    case NGHTTP2_INADEQUATE_SECURITY:
      return static_cast<int>(GrpcCode::kPermissionDenied);
    default:
      return static_cast<int>(GrpcCode::kInternal);
  }
}

GrpcClient::GrpcClient(std::string host, uint16_t port, std::string authority,
                       std::shared_ptr<const TlsContext> tls)
    : host_(std::move(host)),
      port_(port),
      authority_(std::move(authority)),
      tls_(std::move(tls)),
      state_(std::make_unique<SessionState>()),
      read_buf_(new char[kReadBufSize]) {}

GrpcClient::~GrpcClient() { Close(); }

void GrpcClient::DropSession() noexcept {
  if (session_) nghttp2_session_del(session_);
  session_ = nullptr;
  state_->call = nullptr;
  state_->goaway = false;
  out_.clear();
  conn_.Close();
}

void GrpcClient::Close() noexcept {
  if (session_ && conn_.is_open()) {
    // A polite GOAWAY if it goes out at once; the collector copes without it.
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    IoContext io{Clock::now() + kGoawayGrace, nullptr};
    try {
      std::string ignored;
      Flush(io, ignored);
    } catch (...) {
    }
  }
  DropSession();
}

void GrpcClient::AfterForkInChild() noexcept {
  if (session_) nghttp2_session_del(session_);  // memory only; nothing is sent
  session_ = nullptr;
  state_->call = nullptr;
  state_->goaway = false;
  out_.clear();
  conn_.Abandon();
}

NetError GrpcClient::CreateSession(std::string& error) {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    error = "out of memory";
    return NetError::kIo;
  }
  nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameRecv);
  nghttp2_session_callbacks_set_error_callback2(callbacks, OnError);
  int rv = nghttp2_session_client_new(&session_, callbacks, state_.get());
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) {
    session_ = nullptr;
    error = std::string("cannot create an HTTP/2 session: ") + nghttp2_strerror(rv);
    return NetError::kIo;
  }
  state_->goaway = false;
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
  return NetError::kNone;
}

NetError GrpcClient::Flush(const IoContext& io, std::string& error) {
  out_.clear();
  for (;;) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      error = std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n));
      return NetError::kProtocol;
    }
    if (n > 0) out_.append(View(data, static_cast<size_t>(n)));
    if ((n == 0 && !out_.empty()) || out_.size() >= kOutFlushSize) {
      const std::string_view piece[] = {out_};
      NetError e = conn_.Write(piece, io, error);
      out_.clear();
      if (e != NetError::kNone) return e;
    }
    if (n == 0) return NetError::kNone;
  }
}

NetError GrpcClient::Receive(const char* data, size_t len, std::string& error) {
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  if (rv < 0) {
    error = std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv));
    return NetError::kProtocol;
  }
  return NetError::kNone;
}

NetError GrpcClient::EnsureSession(const IoContext& io, bool& reused, std::string& error) {
  reused = false;
  if (session_ && conn_.is_open()) {
    // Take in what the server sent while we were idle (SETTINGS, PING, GOAWAY) and answer it;
    // a closed connection or a GOAWAY means starting afresh.
    bool usable = true;
    std::string ignored;
    for (;;) {
      size_t n = 0;
      if (conn_.ReadAvailable(read_buf_.get(), kReadBufSize, n, ignored) != NetError::kNone ||
          (n > 0 && Receive(read_buf_.get(), n, ignored) != NetError::kNone)) {
        usable = false;
        break;
      }
      if (n == 0) break;
    }
    if (usable && Flush(io, ignored) != NetError::kNone) usable = false;
    if (usable && (state_->goaway || !nghttp2_session_check_request_allowed(session_) ||
                   !nghttp2_session_want_read(session_))) {
      usable = false;
    }
    if (usable) {
      reused = true;
      return NetError::kNone;
    }
    DropSession();
  } else if (session_ || conn_.is_open()) {
    DropSession();
  }

  if (NetError e = conn_.Open(host_, port_, tls_.get(), io, error); e != NetError::kNone) {
    return e;
  }
  ++connections_opened_;
  if (tls_ && conn_.alpn() != "h2") {
    error = "the server at " + authority_ +
            " did not agree to HTTP/2 over TLS (ALPN h2); is this a gRPC endpoint?";
    conn_.Close();
    return NetError::kProtocol;
  }
  return CreateSession(error);
}

void GrpcClient::UnaryCall(std::string_view path, const GrpcMetadata& metadata,
                           std::string_view message, bool compressed, const IoContext& io,
                           GrpcCallResult& result) noexcept {
  try {
    if (CallOnce(path, metadata, message, compressed, io, true, result) ==
        Attempt::kRetryOnNewConnection) {
      CallOnce(path, metadata, message, compressed, io, false, result);
    }
  } catch (...) {        // std::bad_alloc
    AfterForkInChild();  // drop everything without touching the wire: state may be partial
    result.error = NetError::kIo;
    result.error_message = "out of memory";
  }
}

GrpcClient::Attempt GrpcClient::CallOnce(std::string_view path, const GrpcMetadata& metadata,
                                         std::string_view message, bool compressed,
                                         const IoContext& io, bool may_retry,
                                         GrpcCallResult& result) {
  result.error = NetError::kNone;
  result.error_message.clear();
  result.http_status = 0;
  result.grpc_status = 0;
  result.grpc_status_received = false;
  result.grpc_message.clear();
  result.retry_delay.reset();
  result.response_message.clear();

  bool reused = false;
  if (NetError e = EnsureSession(io, reused, result.error_message); e != NetError::kNone) {
    result.error = e;
    return Attempt::kDone;
  }

  const auto left = io.deadline - Clock::now();
  if (left <= Clock::duration::zero()) {
    result.error = NetError::kTimeout;
    result.error_message = "the deadline passed before the call started";
    return Attempt::kDone;
  }
  const std::string timeout =
      FormatGrpcTimeout(std::chrono::duration_cast<std::chrono::nanoseconds>(left));

  const uint64_t size = message.size();
  if (size > UINT32_MAX) {  // the length prefix has 32 bits
    result.error = NetError::kProtocol;
    result.error_message = "the message is too large for gRPC (" + std::to_string(size) + " bytes)";
    return Attempt::kDone;
  }
  Call call;
  call.prefix[0] = compressed ? 1 : 0;
  call.prefix[1] = static_cast<char>((size >> 24) & 0xff);
  call.prefix[2] = static_cast<char>((size >> 16) & 0xff);
  call.prefix[3] = static_cast<char>((size >> 8) & 0xff);
  call.prefix[4] = static_cast<char>(size & 0xff);
  call.message = message;

  std::vector<nghttp2_nv> nva;
  nva.reserve(7 + metadata.size());
  nva.push_back(Nv(":method", "POST"));
  nva.push_back(Nv(":scheme", tls_ ? "https" : "http"));
  nva.push_back(Nv(":path", path));
  nva.push_back(Nv(":authority", authority_));
  nva.push_back(Nv("content-type", "application/grpc"));
  nva.push_back(Nv("te", "trailers"));
  nva.push_back(Nv("grpc-timeout", timeout));
  for (const auto& [name, value] : metadata) nva.push_back(Nv(name, value));

  nghttp2_data_provider body;
  body.source.ptr = &call;
  body.read_callback = ReadRequestBody;
  state_->call = &call;
  state_->last_error.clear();
  // `call` lives on this stack frame: every exit below either sees the stream closed or drops
  // the session, so nghttp2 never reaches it afterwards.
  const int32_t stream_id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &body, nullptr);
  if (stream_id < 0) {
    DropSession();
    if (may_retry) return Attempt::kRetryOnNewConnection;  // e.g. stream ids ran out
    result.error = NetError::kProtocol;
    result.error_message = std::string("HTTP/2: ") + nghttp2_strerror(stream_id);
    return Attempt::kDone;
  }
  call.stream_id = stream_id;

  NetError e = NetError::kNone;
  for (;;) {
    if ((e = Flush(io, result.error_message)) != NetError::kNone) break;
    if (call.closed) break;
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      e = NetError::kClosed;
      result.error_message = "the HTTP/2 session ended before the call completed";
      break;
    }
    size_t n = 0;
    if ((e = conn_.Read(read_buf_.get(), kReadBufSize, n, io, result.error_message)) !=
        NetError::kNone) {
      break;
    }
    if ((e = Receive(read_buf_.get(), n, result.error_message)) != NetError::kNone) break;
  }
  state_->call = nullptr;

  if (!call.closed) {
    if (!state_->last_error.empty() && e != NetError::kTimeout && e != NetError::kCancelled) {
      // nghttp2 gave up on what the server sent: say why rather than "connection closed".
      e = NetError::kProtocol;
      result.error_message = "HTTP/2 protocol error with " + authority_ + ": " +
                             state_->last_error + " (is this a gRPC endpoint?)";
    }
    DropSession();
    // Dead before the server said anything on a connection that sat idle: most likely it was
    // closed under us, so the request was never processed.
    if (may_retry && reused && !call.headers_received &&
        (e == NetError::kClosed || e == NetError::kIo || e == NetError::kProtocol)) {
      return Attempt::kRetryOnNewConnection;
    }
    result.error = e == NetError::kNone ? NetError::kClosed : e;
    if (e == NetError::kTimeout) result.error_message = "timed out waiting for the response";
    return Attempt::kDone;
  }
  if (state_->goaway || !nghttp2_session_check_request_allowed(session_)) DropSession();

  // REFUSED_STREAM guarantees the server did no work (RFC 9113 8.7): safe to send again.
  if (call.close_error == NGHTTP2_REFUSED_STREAM && !call.headers_received && may_retry) {
    DropSession();
    return Attempt::kRetryOnNewConnection;
  }

  result.http_status = call.http_status;
  if (call.grpc_status_received) {
    result.grpc_status_received = true;
    result.grpc_status = call.grpc_status;
    result.grpc_message = std::move(call.grpc_message);
  } else if (call.http_status != 0 && call.http_status != 200) {
    result.grpc_status = GrpcStatusFromHttpStatus(call.http_status);
    result.grpc_message = "HTTP status " + std::to_string(call.http_status);
  } else if (call.close_error != NGHTTP2_NO_ERROR) {
    result.grpc_status = GrpcStatusFromHttp2Error(call.close_error);
    // Reset by the server, or by nghttp2 over a malformed response (then it said why).
    result.grpc_message =
        std::string("the stream was reset: ") + nghttp2_http2_strerror(call.close_error);
    if (!state_->last_error.empty()) result.grpc_message += " (" + state_->last_error + ")";
  } else if (call.content_type.rfind("application/grpc", 0) != 0) {
    result.grpc_status = static_cast<int>(GrpcCode::kUnknown);
    result.grpc_message = "the response is not gRPC (content-type \"" + call.content_type + "\")";
  } else {
    result.grpc_status = static_cast<int>(GrpcCode::kUnknown);
    result.grpc_message = "the response ended without grpc-status";
  }
  if (!call.status_details.empty()) {
    RpcStatus details;
    if (ParseGrpcStatusDetails(call.status_details, details)) {
      result.retry_delay = details.retry_delay;
      if (result.grpc_message.empty()) result.grpc_message = std::move(details.message);
    }
  }
  // Length-prefixed message: a compressed one is left alone (we never ask for compression, so
  // a server sending one anyway only costs us its partial-success detail).
  if (call.data.size() >= 5 && call.data[0] == 0) {
    const auto* p = reinterpret_cast<const uint8_t*>(call.data.data());
    const uint64_t len =
        (uint64_t{p[1]} << 24) | (uint64_t{p[2]} << 16) | (uint64_t{p[3]} << 8) | uint64_t{p[4]};
    if (len <= call.data.size() - 5) result.response_message.assign(call.data, 5, len);
  }
  return Attempt::kDone;
}

}  // namespace djtrace
