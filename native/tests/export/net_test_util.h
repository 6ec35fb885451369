// Test helpers for the transport tests: a loopback TCP server running a handler per connection
// on its own thread (optionally under TLS), and certificates made at run time with OpenSSL.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace djtrace::testing_net {

// ---------------------------------------------------------------------------------------------
// Certificates

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

inline std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) abort();
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A small PKI: one CA, certificates it signs for given subjectAltNames.
class TestCa {
 public:
  TestCa() {
    key_ = EVP_EC_gen("P-256");
    cert_ = X509_new();
    Fill(cert_, key_, "djtrace test CA", 1);
    X509_set_issuer_name(cert_, X509_get_subject_name(cert_));
    AddExtension(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign");
    AddExtension(cert_, cert_, NID_subject_key_identifier, "hash");
    X509_sign(cert_, key_, EVP_sha256());
  }
  ~TestCa() {
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }
  std::string cert_pem() const { return ToPem(cert_); }

  // `san` like "DNS:localhost,IP:127.0.0.1"; `client` for a client-auth certificate.
  KeyPair Issue(const char* san, bool client = false) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    Fill(cert, key, client ? "djtrace test client" : "djtrace test server", ++serial_);
    X509_set_issuer_name(cert, X509_get_subject_name(cert_));
    AddExtension(cert, cert_, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert, cert_, NID_ext_key_usage, client ? "clientAuth" : "serverAuth");
    if (san) AddExtension(cert, cert_, NID_subject_alt_name, san);
    AddExtension(cert, cert_, NID_authority_key_identifier, "keyid:always");
    X509_sign(cert, key_, EVP_sha256());
    KeyPair out{ToPem(cert), ToPem(key)};
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
  }

 private:
  static void Fill(X509* cert, EVP_PKEY* key, const char* cn, long serial) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
  }
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  long serial_ = 1;
};

// A directory under the test temp dir, removed with its files at destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/djtrace-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) abort();
    path_ = buf.data();
  }
  ~TempDir() {
    for (const auto& f : files_) unlink(f.c_str());
    rmdir(path_.c_str());
  }
  std::string Write(const std::string& name, std::string_view content) {
    std::string path = path_ + "/" + name;
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) abort();
    fwrite(content.data(), 1, content.size(), f);
    fclose(f);
    files_.push_back(path);
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// A server-side SSL_CTX with the given certificate; optionally requiring client certificates
// signed by `client_ca_pem`, and selecting ALPN "h2" when offered (or refusing it).
inline SSL_CTX* MakeServerTlsContext(const KeyPair& pair, const std::string& client_ca_file = "",
                                     bool offer_h2 = false) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  BIO* cbio = BIO_new_mem_buf(pair.cert_pem.data(), static_cast<int>(pair.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
  BIO_free(cbio);
  BIO* kbio = BIO_new_mem_buf(pair.key_pem.data(), static_cast<int>(pair.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
  BIO_free(kbio);
  if (!cert || !key || SSL_CTX_use_certificate(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    abort();
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!client_ca_file.empty()) {
    SSL_CTX_load_verify_file(ctx, client_ca_file.c_str());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (offer_h2) {
    SSL_CTX_set_alpn_select_cb(
        ctx,
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
           unsigned inlen, void*) -> int {
          static const unsigned char kH2[] = {2, 'h', '2'};
          unsigned char* selected = nullptr;
          if (SSL_select_next_proto(&selected, outlen, kH2, sizeof(kH2), in, inlen) ==
              OPENSSL_NPN_NEGOTIATED) {
            *out = selected;
            return SSL_TLSEXT_ERR_OK;
          }
          return SSL_TLSEXT_ERR_ALERT_FATAL;
        },
        nullptr);
  }
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Server

// One accepted connection, blocking I/O with a receive timeout so handlers never hang a test.
class ServerConn {
 public:
  ServerConn(int fd, SSL* ssl, const std::atomic<bool>* stopping)
      : fd_(fd), ssl_(ssl), stopping_(stopping) {}

  // Reads some bytes (appended to `buffer`); false at EOF, error, or server stop.
  bool ReadSome() {
    char buf[16384];
    for (;;) {
      if (stopping_->load()) return false;
      if (!ssl_ || SSL_pending(ssl_) == 0) {
        pollfd p{fd_, POLLIN, 0};
        int rc = poll(&p, 1, 50);
        if (rc == 0) continue;
        if (rc < 0) return false;
      }
      int n = ssl_ ? SSL_read(ssl_, buf, sizeof(buf))
                   : static_cast<int>(recv(fd_, buf, sizeof(buf), 0));
      if (n <= 0) {
        if (ssl_ && SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ) continue;
        return false;
      }
      buffer.append(buf, static_cast<size_t>(n));
      return true;
    }
  }

  bool Write(std::string_view data) {
    while (!data.empty()) {
      int n = ssl_ ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                   : static_cast<int>(send(fd_, data.data(), data.size(), MSG_NOSIGNAL));
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  struct Request {
    std::string head;  // request line and headers
    std::string body;
    std::string Header(std::string_view name) const {
      // Case-insensitive search for "\r\nname:".
      std::string lower_head = head;
      for (char& c : lower_head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      std::string key = "\r\n" + std::string(name) + ":";
      for (char& c : key) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      size_t at = lower_head.find(key);
      if (at == std::string::npos) return {};
      size_t start = at + key.size();
      size_t end = head.find("\r\n", start);
      std::string value = head.substr(start, end - start);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      return value;
    }
  };

  // Reads one HTTP/1.1 request with a Content-Length body; false at EOF.
  bool ReadRequest(Request& out) {
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome()) return false;
    }
    out.head = buffer.substr(0, end);
    buffer.erase(0, end + 4);
    size_t length = static_cast<size_t>(std::stoull("0" + out.Header("content-length")));
    while (buffer.size() < length) {
      if (!ReadSome()) return false;
    }
    out.body = buffer.substr(0, length);
    buffer.erase(0, length);
    return true;
  }

  // Waits until the peer closes or the server stops.
  void DrainUntilClosed() {
    while (ReadSome()) buffer.clear();
  }

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }
  std::string buffer;

 private:
  int fd_;
  SSL* ssl_;
  const std::atomic<bool>* stopping_;
};

class TestServer {
 public:
  using Handler = std::function<void(ServerConn&)>;

  explicit TestServer(Handler handler, SSL_CTX* tls = nullptr)
      : handler_(std::move(handler)), tls_(tls) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 16) != 0) {
      abort();
    }
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() { Stop(); }

  void Stop() {
    if (stopping_.exchange(true)) return;
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    close(listen_fd_);
    if (tls_) SSL_CTX_free(tls_);
  }

  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  // TLS handshakes the server saw fail (e.g. the client rejected our certificate).
  int failed_handshakes() const { return failed_handshakes_.load(); }

 private:
  void AcceptLoop() {
    // The server side writes with plain write()/SSL_write and must not die of SIGPIPE when a
    // client hangs up; blocking it here (inherited by the connection threads) leaves the
    // process-wide disposition alone, so tests can still prove the client never raises it.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    while (!stopping_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    SSL* ssl = nullptr;
    if (tls_) {
      ssl = SSL_new(tls_);
      SSL_set_fd(ssl, fd);
      timeval tv{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      if (SSL_accept(ssl) != 1) {
        failed_handshakes_.fetch_add(1);
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return;
      }
    }
    ServerConn conn(fd, ssl, &stopping_);
    handler_(conn);
    if (ssl) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    ERR_clear_error();
    close(fd);
  }

  Handler handler_;
  SSL_CTX* tls_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> failed_handshakes_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

// A port on which nothing listens (bound then closed; racy in theory, fine on loopback).
inline uint16_t UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

inline std::string HttpResponseText(int status, std::string_view reason, std::string_view body,
                                    std::string_view extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace djtrace::testing_net
