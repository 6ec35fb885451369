#include "export/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

namespace djtrace {
namespace {

using Clock = std::chrono::steady_clock;

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif

constexpr size_t kTlsChunk = 16 * 1024;    // one TLS record of plaintext
constexpr size_t kTlsBufSize = 64 * 1024;  // ciphertext staged per socket write
constexpr auto kCancelPollSlice = std::chrono::milliseconds(50);

std::string ErrnoText(int err) {
  char buf[256];
  // The GNU strerror_r returns a pointer that may or may not be `buf`; the XSI one fills buf.
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, sizeof(buf));
#else
  if (strerror_r(err, buf, sizeof(buf)) != 0) snprintf(buf, sizeof(buf), "errno %d", err);
  return buf;
#endif
}

// Drains OpenSSL's per-thread error queue into one readable line.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    if (!out.empty()) out += "; ";
    if (const char* reason = ERR_reason_error_string(code)) {
      out += reason;
    } else {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof(buf));
      out += buf;
    }
  }
  return out;
}

int PollTimeoutMs(Deadline deadline, bool slice) {
  auto left = deadline - Clock::now();
  if (slice) left = std::min<Clock::duration>(left, kCancelPollSlice);
  // Round up: a 0 ms poll for 0.4 ms left would spin.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, INT_MAX));
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string AddressText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

bool SetNonBlockingCloexec(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return false;
  int fdflags = fcntl(fd, F_GETFD);
  return fdflags >= 0 && fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) >= 0;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const noexcept {
    if (ai) freeaddrinfo(ai);
  }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

// A name lookup on its own thread, so that a slow or dead DNS server costs the export its
// deadline and no more (getaddrinfo has no timeout of its own). The thread owns a share of the
// job; if we stop waiting, it finishes and frees the job alone.
struct ResolveJob {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = 0;
  int sys_errno = 0;
  AddrInfoPtr result;
  std::string host;
  std::string service;
};

NetError Resolve(const std::string& host, uint16_t port, const IoContext& io, AddrInfoPtr& out,
                 std::string& error) {
  const std::string service = std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  // IP literals need no lookup and no thread.
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &list) == 0) {
    out.reset(list);
    return NetError::kNone;
  }

  auto job = std::make_shared<ResolveJob>();
  job->host = host;
  job->service = service;
  auto run = [job] {
    addrinfo h{};
    h.ai_family = AF_UNSPEC;
    h.ai_socktype = SOCK_STREAM;
    h.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(job->host.c_str(), job->service.c_str(), &h, &res);
    int sys_errno = errno;
    std::lock_guard<std::mutex> lock(job->mu);
    job->rc = rc;
    job->sys_errno = sys_errno;
    job->result.reset(res);
    job->done = true;
    job->cv.notify_all();
  };
  try {
    std::thread(run).detach();
  } catch (const std::system_error&) {
    run();  // no thread to be had: resolve inline rather than not at all
  }

  std::unique_lock<std::mutex> lock(job->mu);
  while (!job->done) {
    if (io.canceller && io.canceller->cancelled()) {
      error = "cancelled while resolving " + host;
      return NetError::kCancelled;
    }
    auto now = Clock::now();
    if (now >= io.deadline) {
      error = "timed out resolving " + host;
      return NetError::kTimeout;
    }
    job->cv.wait_until(lock, std::min<Deadline>(io.deadline, now + kCancelPollSlice));
  }
  if (job->rc != 0) {
    error = "cannot resolve " + host + ": " +
            (job->rc == EAI_SYSTEM ? ErrnoText(job->sys_errno) : gai_strerror(job->rc));
    return NetError::kResolve;
  }
  out = std::move(job->result);
  return NetError::kNone;
}

std::string AlpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255) continue;
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

bool ReadableFile(const std::string& path, std::string& why) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) {
    why = ErrnoText(errno);
    return false;
  }
  fclose(f);
  return true;
}

}  // namespace

std::string_view NetErrorName(NetError error) noexcept {
  switch (error) {
    case NetError::kNone:
      return "ok";
    case NetError::kResolve:
      return "resolve";
    case NetError::kConnect:
      return "connect";
    case NetError::kTls:
      return "tls";
    case NetError::kTimeout:
      return "timeout";
    case NetError::kClosed:
      return "closed";
    case NetError::kIo:
      return "io";
    case NetError::kProtocol:
      return "protocol";
    case NetError::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Canceller

Canceller::Canceller() noexcept { MakePipe(); }

Canceller::~Canceller() {
  if (read_fd_ >= 0) close(read_fd_);
  if (write_fd_ >= 0) close(write_fd_);
}

void Canceller::MakePipe() noexcept {
  int fds[2];
  if (pipe(fds) != 0) {
    read_fd_ = write_fd_ = -1;
    return;
  }
  if (!SetNonBlockingCloexec(fds[0]) || !SetNonBlockingCloexec(fds[1])) {
    close(fds[0]);
    close(fds[1]);
    read_fd_ = write_fd_ = -1;
    return;
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  if (cancelled()) {
    char byte = 1;
    [[maybe_unused]] ssize_t r = write(write_fd_, &byte, 1);
  }
}

void Canceller::Cancel() noexcept {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  if (write_fd_ >= 0) {
    char byte = 1;
    [[maybe_unused]] ssize_t r = write(write_fd_, &byte, 1);
  }
}

bool Canceller::SleepUntil(Deadline until) const noexcept {
  for (;;) {
    if (cancelled()) return false;
    if (Clock::now() >= until) return true;
    pollfd p{read_fd_, POLLIN, 0};
    poll(&p, read_fd_ >= 0 ? 1 : 0, PollTimeoutMs(until, read_fd_ < 0));
  }
}

void Canceller::AfterForkInChild() noexcept {
  if (read_fd_ >= 0) close(read_fd_);
  if (write_fd_ >= 0) close(write_fd_);
  MakePipe();
}

NetError WaitFd(int fd, short events, const IoContext& io, std::string& error) noexcept {
  const int cancel_fd = io.canceller ? io.canceller->fd() : -1;
  const bool slice = io.canceller && cancel_fd < 0;
  for (;;) {
    if (io.canceller && io.canceller->cancelled()) {
      error = "cancelled";
      return NetError::kCancelled;
    }
    if (Clock::now() >= io.deadline) {
      error = "timed out";
      return NetError::kTimeout;
    }
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    int rc = poll(fds, cancel_fd >= 0 ? 2 : 1, PollTimeoutMs(io.deadline, slice));
    if (rc < 0) {
      if (errno == EINTR) continue;
      error = "poll: " + ErrnoText(errno);
      return NetError::kIo;
    }
    // Readiness includes POLLERR/POLLHUP: the next syscall on fd reports what happened.
    if (rc > 0 && fds[0].revents) return NetError::kNone;
  }
}

// ---------------------------------------------------------------------------------------------
// TlsContext

std::shared_ptr<TlsContext> TlsContext::Create(const TlsOptions& options, std::string& error) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    error = "cannot create a TLS context: " + OpenSslErrors();
    return nullptr;
  }
  std::shared_ptr<TlsContext> result(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);

  std::string why;
  if (!options.ca_file.empty()) {
    if (!ReadableFile(options.ca_file, why)) {
      error = "cannot read the certificate file \"" + options.ca_file + "\": " + why;
      return nullptr;
    }
    if (SSL_CTX_load_verify_file(ctx, options.ca_file.c_str()) != 1) {
      error = "no usable PEM certificate in \"" + options.ca_file + "\": " + OpenSslErrors();
      return nullptr;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    error = "cannot load the system's trusted certificates: " + OpenSslErrors();
    return nullptr;
  }

  const bool has_cert = !options.client_cert_file.empty();
  const bool has_key = !options.client_key_file.empty();
  if (has_cert != has_key) {
    error = has_cert ? "a client certificate was given without its client key"
                     : "a client key was given without its client certificate";
    return nullptr;
  }
  if (has_cert) {
    if (!ReadableFile(options.client_cert_file, why)) {
      error =
          "cannot read the client certificate file \"" + options.client_cert_file + "\": " + why;
      return nullptr;
    }
    if (!ReadableFile(options.client_key_file, why)) {
      error = "cannot read the client key file \"" + options.client_key_file + "\": " + why;
      return nullptr;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, options.client_cert_file.c_str()) != 1) {
      error =
          "no usable PEM certificate in \"" + options.client_cert_file + "\": " + OpenSslErrors();
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.client_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      std::string reasons = OpenSslErrors();
      if (reasons.find("key values mismatch") != std::string::npos) {
        error = "the client key in \"" + options.client_key_file +
                "\" does not match the client certificate";
      } else {
        error = "no usable PEM private key in \"" + options.client_key_file + "\": " + reasons;
      }
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      error = "the client key does not match the client certificate: " + OpenSslErrors();
      return nullptr;
    }
  }

  if (!options.alpn.empty()) {
    std::string wire = AlpnWire(options.alpn);
    // Unlike most of OpenSSL, this one returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0) {
      error = "cannot set the ALPN protocols: " + OpenSslErrors();
      return nullptr;
    }
  }
  return result;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

// ---------------------------------------------------------------------------------------------
// Connection

Connection::~Connection() { Close(); }

NetError Connection::Open(const std::string& host, uint16_t port, const TlsContext* tls,
                          const IoContext& io, std::string& error) {
  Close();
  peer_ = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  peer_ += ':';
  peer_ += std::to_string(port);

  AddrInfoPtr addrs;
  if (NetError e = Resolve(host, port, io, addrs, error); e != NetError::kNone) return e;

  size_t count = 0;
  for (addrinfo* ai = addrs.get(); ai; ai = ai->ai_next) ++count;
  std::string last_error = "no address";
  NetError last_kind = NetError::kConnect;
  size_t index = 0;
  for (addrinfo* ai = addrs.get(); ai; ai = ai->ai_next, ++index) {
    // A black-holed first address must not eat the whole budget: give each remaining address
    // an equal share of what is left.
    auto now = Clock::now();
    if (now >= io.deadline) {
      last_kind = NetError::kTimeout;
      break;
    }
    IoContext attempt = io;
    attempt.deadline = now + (io.deadline - now) / static_cast<int64_t>(count - index);

    int type = ai->ai_socktype;
#ifdef SOCK_CLOEXEC
    type |= SOCK_CLOEXEC | SOCK_NONBLOCK;  // atomically: no window for a concurrent exec
#endif
    int fd = socket(ai->ai_family, type, ai->ai_protocol);
    if (fd < 0) {
      last_error = "socket: " + ErrnoText(errno);
      continue;
    }
    if (!SetNonBlockingCloexec(fd)) {
      last_error = "fcntl: " + ErrnoText(errno);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
    const std::string where = AddressText(ai->ai_addr);
    // A non-blocking connect interrupted by a signal carries on in the background (EINTR is
    // then as good as EINPROGRESS); calling connect() again would only say EALREADY.
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
      last_error = where + ": " + ErrnoText(errno);
      close(fd);
      continue;
    }
    if (rc != 0) {
      std::string wait_error;
      NetError w = WaitFd(fd, POLLOUT, attempt, wait_error);
      if (w == NetError::kCancelled) {
        close(fd);
        error = "cancelled while connecting to " + peer_;
        return w;
      }
      if (w != NetError::kNone) {
        last_error = where + ": " + wait_error;
        if (w == NetError::kTimeout) last_kind = NetError::kTimeout;
        close(fd);
        continue;
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
      if (so_error != 0) {
        last_error = where + ": " + ErrnoText(so_error);
        last_kind = NetError::kConnect;
        close(fd);
        continue;
      }
    }
    fd_ = fd;
    break;
  }
  if (fd_ < 0) {
    error = "cannot connect to " + peer_ + " (" + last_error + ")";
    return last_kind;
  }
  if (tls) {
    raw_buf_.reset(new char[kTlsBufSize]);
    ERR_clear_error();
    ssl_ = SSL_new(tls->get());
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) {
      error = "cannot create a TLS session: " + OpenSslErrors();
      BIO_free(rbio_);  // not yet owned by ssl_
      BIO_free(wbio_);
      rbio_ = wbio_ = nullptr;
      Abandon();
      return NetError::kTls;
    }
    // An empty read BIO means "wait for more", not end of stream.
    BIO_set_mem_eof_return(rbio_, -1);
    SSL_set_bio(ssl_, rbio_, wbio_);
    if (NetError e = Handshake(host, io, error); e != NetError::kNone) {
      Abandon();  // no close_notify into a failed handshake
      return e;
    }
  }
  return NetError::kNone;
}

NetError Connection::Handshake(const std::string& host, const IoContext& io, std::string& error) {
  if (IsIpLiteral(host)) {
    // No SNI for addresses (RFC 6066); the certificate must name the IP in its SAN.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, host.c_str());
    SSL_set1_host(ssl_, host.c_str());
  }
  SSL_set_connect_state(ssl_);
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) break;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (NetError f = FlushTls(&io, error); f != NetError::kNone) return f;
      if (e == SSL_ERROR_WANT_READ) {
        NetError f = FeedTls(&io, error);
        if (f == NetError::kClosed) {
          error = "TLS handshake with " + peer_ + " failed: the server closed the connection";
          return NetError::kTls;
        }
        if (f != NetError::kNone) {
          error = "TLS handshake with " + peer_ + ": " + error;
          return f;
        }
      }
      continue;
    }
    std::string reasons = OpenSslErrors();
    long verify = SSL_get_verify_result(ssl_);
    error = "TLS handshake with " + peer_ + " failed";
    if (!reasons.empty()) error += ": " + reasons;
    if (verify != X509_V_OK) {
      error += " (";
      error += X509_verify_cert_error_string(verify);
      error += ")";
    } else if (reasons.find("wrong version number") != std::string::npos ||
               reasons.find("packet length too long") != std::string::npos) {
      error += " (the server does not seem to speak TLS; use an http:// endpoint for plaintext)";
    }
    return NetError::kTls;
  }
  if (NetError f = FlushTls(&io, error); f != NetError::kNone) return f;
  const unsigned char* proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(ssl_, &proto, &proto_len);
  alpn_.assign(reinterpret_cast<const char*>(proto), proto_len);
  return NetError::kNone;
}

NetError Connection::FlushTls(const IoContext* io, std::string& error) {
  for (;;) {
    if (tls_out_off_ == tls_out_.size()) {
      tls_out_.clear();
      tls_out_off_ = 0;
      size_t pending = BIO_ctrl_pending(wbio_);
      if (pending == 0) return NetError::kNone;
      tls_out_.resize(std::min(pending, kTlsBufSize));
      int got = BIO_read(wbio_, tls_out_.data(), static_cast<int>(tls_out_.size()));
      tls_out_.resize(got > 0 ? static_cast<size_t>(got) : 0);
      if (tls_out_.empty()) return NetError::kNone;
    }
    ssize_t sent =
        send(fd_, tls_out_.data() + tls_out_off_, tls_out_.size() - tls_out_off_, kSendFlags);
    if (sent > 0) {
      tls_out_off_ += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!io) return NetError::kNone;  // the rest goes with the next flush
      if (NetError w = WaitFd(fd_, POLLOUT, *io, error); w != NetError::kNone) return w;
      continue;
    }
    const int send_errno = errno;
    if (std::string alert = PendingTlsAlert(); !alert.empty()) {
      error = "TLS connection with " + peer_ + " failed: " + alert;
      tls_failed_ = true;
      return NetError::kTls;
    }
    error = "send to " + peer_ + ": " + ErrnoText(send_errno);
    return NetError::kIo;
  }
}

std::string Connection::PendingTlsAlert() {
  // A server refusing us after the handshake (TLS 1.3 client-certificate checks) sends an
  // alert and resets the connection, and our next send fails with ECONNRESET. The alert may
  // still wait in the socket's receive queue; it says far more than "connection reset".
  for (;;) {
    ssize_t got = recv(fd_, raw_buf_.get(), kTlsBufSize, MSG_DONTWAIT);
    if (got <= 0) break;
    BIO_write(rbio_, raw_buf_.get(), static_cast<int>(got));
  }
  if (BIO_ctrl_pending(rbio_) == 0) return {};
  ERR_clear_error();
  char byte;
  int r = SSL_read(ssl_, &byte, 1);
  if (r > 0 || SSL_get_error(ssl_, r) != SSL_ERROR_SSL) {
    ERR_clear_error();
    return {};
  }
  return OpenSslErrors();
}

NetError Connection::FeedTls(const IoContext* io, std::string& error) {
  for (;;) {
    ssize_t got = recv(fd_, raw_buf_.get(), kTlsBufSize, 0);
    if (got > 0) {
      if (BIO_write(rbio_, raw_buf_.get(), static_cast<int>(got)) != got) {
        error = "TLS buffer: " + OpenSslErrors();
        return NetError::kTls;
      }
      return NetError::kNone;
    }
    if (got == 0) {
      error = "connection closed by " + peer_;
      return NetError::kClosed;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!io) return NetError::kTimeout;  // "would block", see ReadImpl
      if (NetError w = WaitFd(fd_, POLLIN, *io, error); w != NetError::kNone) return w;
      continue;
    }
    error = "recv from " + peer_ + ": " + ErrnoText(errno);
    return NetError::kIo;
  }
}

NetError Connection::Write(std::span<const std::string_view> pieces, const IoContext& io,
                           std::string& error) {
  if (fd_ < 0) {
    error = "not connected";
    return NetError::kClosed;
  }
  if (!ssl_) {
    constexpr size_t kMaxIov = 8;
    size_t piece = 0, offset = 0;
    while (piece < pieces.size()) {
      iovec iov[kMaxIov];
      size_t n = 0;
      for (size_t i = piece; i < pieces.size() && n < kMaxIov; ++i) {
        size_t skip = i == piece ? offset : 0;
        if (pieces[i].size() == skip) continue;
        iov[n].iov_base = const_cast<char*>(pieces[i].data() + skip);
        iov[n].iov_len = pieces[i].size() - skip;
        ++n;
      }
      if (n == 0) break;
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      ssize_t sent = sendmsg(fd_, &msg, kSendFlags);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (NetError w = WaitFd(fd_, POLLOUT, io, error); w != NetError::kNone) return w;
          continue;
        }
        error = "send to " + peer_ + ": " + ErrnoText(errno);
        return NetError::kIo;
      }
      size_t left = static_cast<size_t>(sent);
      while (piece < pieces.size() && left >= pieces[piece].size() - offset) {
        left -= pieces[piece].size() - offset;
        ++piece;
        offset = 0;
      }
      offset += left;
    }
    return NetError::kNone;
  }

  for (std::string_view piece : pieces) {
    while (!piece.empty()) {
      const size_t chunk = std::min(piece.size(), kTlsChunk);
      ERR_clear_error();
      int r = SSL_write(ssl_, piece.data(), static_cast<int>(chunk));
      if (r > 0) {
        piece.remove_prefix(static_cast<size_t>(r));
        // Bound the ciphertext held in memory: a large batch is not duplicated whole.
        if (BIO_ctrl_pending(wbio_) >= kTlsBufSize) {
          if (NetError f = FlushTls(&io, error); f != NetError::kNone) return f;
        }
        continue;
      }
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_WRITE) {
        if (NetError f = FlushTls(&io, error); f != NetError::kNone) return f;
        continue;
      }
      if (e == SSL_ERROR_WANT_READ) {
        if (NetError f = FlushTls(&io, error); f != NetError::kNone) return f;
        if (NetError f = FeedTls(&io, error); f != NetError::kNone) return f;
        continue;
      }
      error = "TLS write to " + peer_ + ": " + OpenSslErrors();
      tls_failed_ = true;
      return NetError::kTls;
    }
  }
  return FlushTls(&io, error);
}

NetError Connection::ReadImpl(char* buf, size_t cap, size_t& n, const IoContext* io,
                              std::string& error) {
  n = 0;
  if (fd_ < 0) {
    error = "not connected";
    return NetError::kClosed;
  }
  if (!ssl_) {
    for (;;) {
      ssize_t got = recv(fd_, buf, cap, 0);
      if (got > 0) {
        n = static_cast<size_t>(got);
        return NetError::kNone;
      }
      if (got == 0) {
        error = "connection closed by " + peer_;
        return NetError::kClosed;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!io) return NetError::kNone;
        if (NetError w = WaitFd(fd_, POLLIN, *io, error); w != NetError::kNone) return w;
        continue;
      }
      error = "recv from " + peer_ + ": " + ErrnoText(errno);
      return NetError::kIo;
    }
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(cap, INT_MAX)));
    if (r > 0) {
      n = static_cast<size_t>(r);
      return NetError::kNone;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
      error = "connection closed by " + peer_;
      return NetError::kClosed;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      // Reading can produce output (a KeyUpdate answer); send it along.
      if (NetError f = FlushTls(io, error); f != NetError::kNone) return f;
      NetError f = FeedTls(io, error);
      if (f == NetError::kTimeout && !io) return NetError::kNone;  // nothing available now
      if (f != NetError::kNone) return f;
      continue;
    }
    tls_failed_ = true;
    error = "TLS read from " + peer_ + ": " + OpenSslErrors();
    return NetError::kTls;
  }
}

NetError Connection::Read(char* buf, size_t cap, size_t& n, const IoContext& io,
                          std::string& error) {
  return ReadImpl(buf, cap, n, &io, error);
}

NetError Connection::ReadAvailable(char* buf, size_t cap, size_t& n, std::string& error) {
  return ReadImpl(buf, cap, n, nullptr, error);
}

bool Connection::IdleAndUsable() noexcept {
  if (fd_ < 0) return false;
  if (ssl_ && (tls_failed_ || SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0)) return false;
  pollfd p{fd_, POLLIN, 0};
  int rc;
  do {
    rc = poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  return rc == 0;
}

void Connection::FreeTls() noexcept {
  if (ssl_) {
    SSL_free(ssl_);  // frees both BIOs; writes nothing
  }
  ssl_ = nullptr;
  rbio_ = wbio_ = nullptr;
  tls_out_.clear();
  tls_out_off_ = 0;
  tls_failed_ = false;
  alpn_.clear();
}

void Connection::Close() noexcept {
  if (fd_ < 0) {
    FreeTls();
    return;
  }
  if (ssl_ && !tls_failed_ && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    std::string ignored;
    try {
      FlushTls(nullptr, ignored);
    } catch (...) {
    }
    ERR_clear_error();
  }
  FreeTls();
  close(fd_);
  fd_ = -1;
}

void Connection::Abandon() noexcept {
  FreeTls();
  if (fd_ >= 0) close(fd_);  // close(), never shutdown(): the parent's socket stays intact
  fd_ = -1;
}

}  // namespace djtrace
