// A byte stream to a collector: TCP with non-blocking connect and poll-based I/O bounded by a
// deadline, optionally TLS (OpenSSL 3) on top. Shared by the HTTP/1.1 and the gRPC clients.
//
// TLS runs over memory BIOs and this file moves the bytes between them and the socket itself.
// That keeps one poll loop for both cases (deadline and cancellation honoured everywhere) and
// makes every socket write a send(MSG_NOSIGNAL), so a peer that went away can never raise
// SIGPIPE in the host process, whatever its signal disposition.
#pragma once

#include <openssl/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace djtrace {

using Deadline = std::chrono::steady_clock::time_point;

enum class NetError : uint8_t {
  kNone = 0,
  kResolve,    // the host name did not resolve
  kConnect,    // no address accepted the connection
  kTls,        // handshake, certificate or TLS record failure
  kTimeout,    // the deadline passed
  kClosed,     // the peer closed the connection
  kIo,         // a socket error (reset, broken pipe, ...)
  kProtocol,   // the peer spoke something we do not understand
  kCancelled,  // Canceller::Cancel() was called (exporter shutdown)
};

// "connect", "timeout", ... for log messages and error de-duplication keys.
std::string_view NetErrorName(NetError error) noexcept;

// Wakes every wait that watches it, from any thread: socket waits and backoff sleeps. Used by
// an exporter's Shutdown() to abandon an export stuck on a dead collector. Sticky.
class Canceller {
 public:
  Canceller() noexcept;
  ~Canceller();
  Canceller(const Canceller&) = delete;
  Canceller& operator=(const Canceller&) = delete;

  void Cancel() noexcept;
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }
  // Readable once cancelled; -1 if no pipe could be made (then waits poll the flag instead).
  int fd() const noexcept { return read_fd_; }
  // Sleeps until `until`; false if cancelled first.
  bool SleepUntil(Deadline until) const noexcept;
  // In a forked child: the pipe is shared with the parent, so a Cancel() in one process would
  // wake the other. Makes a new one (the old descriptors are closed, nothing is written).
  void AfterForkInChild() noexcept;

 private:
  void MakePipe() noexcept;
  std::atomic<bool> cancelled_{false};
  int read_fd_ = -1;
  int write_fd_ = -1;
};

// What bounds one blocking operation.
struct IoContext {
  Deadline deadline;
  const Canceller* canceller = nullptr;
};

struct TlsOptions {
  std::string ca_file;           // PEM bundle to trust instead of the system store
  std::string client_cert_file;  // PEM, may hold the chain; with client_key_file for mTLS
  std::string client_key_file;
  std::vector<std::string> alpn;  // protocols to offer, e.g. {"h2"}
};

// An SSL_CTX configured once from TlsOptions: peer verification always on, TLS 1.2 minimum.
class TlsContext {
 public:
  // Returns null and sets `error` if a file cannot be read or does not hold what it should.
  static std::shared_ptr<TlsContext> Create(const TlsOptions& options, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const noexcept { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

// One connection. Not thread-safe; owned by one client.
class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Resolves `host`, connects to its addresses in turn and, with `tls`, runs the handshake
  // (SNI and certificate name check against `host`). Closes any previous connection first.
  NetError Open(const std::string& host, uint16_t port, const TlsContext* tls, const IoContext& io,
                std::string& error);
  bool is_open() const noexcept { return fd_ >= 0; }
  int native_handle() const noexcept { return fd_; }
  // The ALPN protocol the server selected ("h2"), empty if none.
  std::string_view alpn() const noexcept { return alpn_; }

  // Sends all of every piece, in order.
  NetError Write(std::span<const std::string_view> pieces, const IoContext& io, std::string& error);
  // Reads at least one byte into buf (n set), waiting until the deadline. kClosed at the end of
  // the stream.
  NetError Read(char* buf, size_t cap, size_t& n, const IoContext& io, std::string& error);
  // Reads what is available now without waiting; n == 0 with kNone if nothing is.
  NetError ReadAvailable(char* buf, size_t cap, size_t& n, std::string& error);
  // For a keep-alive connection about to be reused: false if the peer has closed it or sent
  // anything unsolicited (an HTTP/1.1 server only does that when it is going away).
  bool IdleAndUsable() noexcept;

  // Closes, sending a TLS close_notify if it fits in the socket buffer right now.
  void Close() noexcept;
  // In a forked child: closes the descriptor and frees the TLS state without sending a byte,
  // since the session and the socket still belong to the parent.
  void Abandon() noexcept;

 private:
  NetError ReadImpl(char* buf, size_t cap, size_t& n, const IoContext* io, std::string& error);
  NetError Handshake(const std::string& host, const IoContext& io, std::string& error);
  NetError FlushTls(const IoContext* io, std::string& error);
  NetError FeedTls(const IoContext* io, std::string& error);
  std::string PendingTlsAlert();
  void FreeTls() noexcept;

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;              // network -> OpenSSL (owned by ssl_)
  BIO* wbio_ = nullptr;              // OpenSSL -> network (owned by ssl_)
  std::unique_ptr<char[]> raw_buf_;  // ciphertext received, TLS only
  std::string tls_out_;              // ciphertext not yet accepted by the socket
  size_t tls_out_off_ = 0;
  bool tls_failed_ = false;  // a fatal TLS error: no close_notify may follow
  std::string peer_;         // "host:port" for error messages
  std::string alpn_;
};

// Waits for `events` on fd (POLLIN/POLLOUT) until the deadline or cancellation.
NetError WaitFd(int fd, short events, const IoContext& io, std::string& error) noexcept;

}  // namespace djtrace
