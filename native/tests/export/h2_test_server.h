// A gRPC-over-HTTP/2 test server built on nghttp2's server session, run as a TestServer handler
// (h2c, or TLS with ALPN h2). Each request gets the reply a test's behaviour function chooses:
// a normal response with trailers, a trailers-only status, an HTTP error, a stream reset, a
// GOAWAY, or silence.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/export/net_test_util.h"

namespace djtrace::testing_net {

struct GrpcRequestSeen {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the raw DATA bytes: 5-byte prefix + message
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    return {};
  }
  std::string Message() const { return body.size() >= 5 ? body.substr(5) : std::string(); }
};

struct GrpcReply {
  int http_status = 200;
  bool trailers_only = false;  // grpc-status in the response HEADERS, no DATA
  std::string message;         // response message (a length prefix is added)
  std::vector<std::pair<std::string, std::string>> trailers = {{"grpc-status", "0"}};
  uint32_t rst_error = 0;           // nonzero: reset the stream with this code instead
  bool refuse_with_goaway = false;  // GOAWAY(last_stream_id below this one): never processed
  bool goaway_after = false;        // answer, then GOAWAY
  bool close_after = false;         // answer, then close the connection
  bool never_answer = false;
};

using GrpcBehavior = std::function<GrpcReply(const GrpcRequestSeen&, int index)>;

class GrpcTestService {
 public:
  explicit GrpcTestService(GrpcBehavior behavior) : behavior_(std::move(behavior)) {}

  TestServer::Handler Handler() {
    return [this](ServerConn& conn) { Serve(conn); };
  }

  std::vector<GrpcRequestSeen> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  struct Stream {
    GrpcRequestSeen request;
    std::string response;  // prefixed message
    size_t offset = 0;
    std::vector<std::pair<std::string, std::string>> trailers;
  };
  struct Session {
    GrpcTestService* service;
    nghttp2_session* session = nullptr;
    std::map<int32_t, Stream> streams;
    bool close_after = false;
  };

  static nghttp2_nv Nv(std::string_view n, std::string_view v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }

  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* flags, nghttp2_data_source*,
                              void* user_data) {
    auto* s = static_cast<Session*>(user_data);
    Stream& st = s->streams[stream_id];
    size_t n = std::min(length, st.response.size() - st.offset);
    memcpy(buf, st.response.data() + st.offset, n);
    st.offset += n;
    if (st.offset == st.response.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st.trailers.empty()) {
        std::vector<nghttp2_nv> nva;
        for (const auto& [k, v] : st.trailers) nva.push_back(Nv(k, v));
        nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size());
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }

  void Respond(Session& s, int32_t stream_id) {
    Stream& st = s.streams[stream_id];
    int index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      index = static_cast<int>(seen_.size());
      seen_.push_back(st.request);
    }
    GrpcReply reply = behavior_(st.request, index);
    if (reply.never_answer) return;
    if (reply.refuse_with_goaway) {
      nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, std::max(stream_id - 2, 0),
                            NGHTTP2_NO_ERROR, nullptr, 0);
      return;
    }
    if (reply.rst_error) {
      nghttp2_submit_rst_stream(s.session, NGHTTP2_FLAG_NONE, stream_id, reply.rst_error);
      return;
    }
    std::string status = std::to_string(reply.http_status);
    std::vector<nghttp2_nv> nva;
    std::string ctype = reply.http_status == 200 ? "application/grpc" : "text/plain";
    nva.push_back(Nv(":status", status));
    nva.push_back(Nv("content-type", ctype));
    if (reply.trailers_only || reply.http_status != 200) {
      if (reply.http_status == 200) {
        for (const auto& [k, v] : reply.trailers) nva.push_back(Nv(k, v));
      }
      nghttp2_submit_response(s.session, stream_id, nva.data(), nva.size(), nullptr);
    } else {
      st.response.assign(1, '\0');
      uint32_t len = static_cast<uint32_t>(reply.message.size());
      st.response += static_cast<char>(len >> 24);
      st.response += static_cast<char>(len >> 16);
      st.response += static_cast<char>(len >> 8);
      st.response += static_cast<char>(len);
      st.response += reply.message;
      st.trailers = reply.trailers;
      nghttp2_data_provider prd;
      prd.source.ptr = nullptr;
      prd.read_callback = ReadResponse;
      nghttp2_submit_response(s.session, stream_id, nva.data(), nva.size(), &prd);
    }
    if (reply.goaway_after) {
      nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
    }
    if (reply.close_after) s.close_after = true;
  }

  void Serve(ServerConn& conn) {
    Session s{this};
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs,
        [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
           const uint8_t* value, size_t valuelen, uint8_t, void* user_data) -> int {
          auto* s = static_cast<Session*>(user_data);
          s->streams[frame->hd.stream_id].request.headers.emplace_back(
              std::string(reinterpret_cast<const char*>(name), namelen),
              std::string(reinterpret_cast<const char*>(value), valuelen));
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs,
        [](nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
           void* user_data) -> int {
          auto* s = static_cast<Session*>(user_data);
          s->streams[stream_id].request.body.append(reinterpret_cast<const char*>(data), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* frame, void* user_data) -> int {
          auto* s = static_cast<Session*>(user_data);
          if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
              (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->service->Respond(*s, frame->hd.stream_id);
          }
          return 0;
        });
    nghttp2_session_server_new(&s.session, cbs, &s);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(s.session, NGHTTP2_FLAG_NONE, iv, 1);

    for (;;) {
      const uint8_t* out;
      ssize_t n;
      bool failed = false;
      while ((n = nghttp2_session_mem_send(s.session, &out)) > 0) {
        if (!conn.Write(std::string_view(reinterpret_cast<const char*>(out), n))) failed = true;
      }
      if (failed || s.close_after) break;
      if (!nghttp2_session_want_read(s.session) && !nghttp2_session_want_write(s.session)) break;
      if (!conn.ReadSome()) break;
      ssize_t rv = nghttp2_session_mem_recv(
          s.session, reinterpret_cast<const uint8_t*>(conn.buffer.data()), conn.buffer.size());
      conn.buffer.clear();
      if (rv < 0) break;
    }
    nghttp2_session_del(s.session);
  }

  GrpcBehavior behavior_;
  std::mutex mu_;
  std::vector<GrpcRequestSeen> seen_;
};

}  // namespace djtrace::testing_net
