#include "export/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <new>

namespace djtrace {
namespace {

constexpr int kGzipWindowBits = 16 + MAX_WBITS;  // 16+: gzip header and trailer, not zlib's
constexpr int kMemLevel = 8;                     // zlib's default

// zlib counts in uInt: feed and drain at most this much per call.
constexpr size_t kMaxChunk = UINT_MAX;

class Deflater {
 public:
  Deflater() = default;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater() {
    if (initialized_) deflateEnd(&stream_);
  }

  // A stream ready for a new member at `level`, or null if zlib cannot make one.
  z_stream* Ready(int level) {
    if (initialized_ && level == level_ && deflateReset(&stream_) == Z_OK) return &stream_;
    if (initialized_) deflateEnd(&stream_);
    initialized_ = false;
    stream_ = z_stream{};
    if (deflateInit2(&stream_, level, Z_DEFLATED, kGzipWindowBits, kMemLevel, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      return nullptr;
    }
    initialized_ = true;
    level_ = level;
    return &stream_;
  }

  // After a failure the stream's state is unknown: start afresh next time.
  void Discard() {
    if (initialized_) deflateEnd(&stream_);
    initialized_ = false;
  }

 private:
  z_stream stream_{};
  bool initialized_ = false;
  int level_ = 0;
};

}  // namespace

bool GzipCompress(std::string_view in, std::string& out, int level) noexcept {
  if (level < Z_DEFAULT_COMPRESSION || level > Z_BEST_COMPRESSION) return false;
  thread_local Deflater deflater;
  z_stream* z = deflater.Ready(level);
  if (z == nullptr) return false;

  const size_t old_size = out.size();
  try {
    // deflateBound is enough to finish in one call for any input zlib can take in one call.
    out.resize(old_size + deflateBound(z, static_cast<uLong>(in.size())));
  } catch (const std::bad_alloc&) {
    deflater.Discard();
    return false;
  }
  size_t produced = 0;
  size_t consumed = 0;
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    if (z->avail_in == 0 && consumed < in.size()) {
      size_t chunk = std::min(in.size() - consumed, kMaxChunk);
      z->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
      z->avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    size_t room = out.size() - old_size - produced;
    if (room == 0) {
      try {
        out.resize(out.size() + std::max<size_t>(64 << 10, (out.size() - old_size) / 2));
      } catch (const std::bad_alloc&) {
        out.resize(old_size);
        deflater.Discard();
        return false;
      }
      room = out.size() - old_size - produced;
    }
    size_t chunk = std::min(room, kMaxChunk);
    z->next_out = reinterpret_cast<Bytef*>(out.data() + old_size + produced);
    z->avail_out = static_cast<uInt>(chunk);
    ret = deflate(z, consumed == in.size() ? Z_FINISH : Z_NO_FLUSH);
    produced += chunk - z->avail_out;
    if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
      out.resize(old_size);
      deflater.Discard();
      return false;
    }
  }
  out.resize(old_size + produced);
  return true;
}

bool GzipDecompress(std::string_view in, std::string& out, size_t max_output) noexcept {
  max_output = std::min(max_output, SIZE_MAX - 1);  // room for the one-over-the-limit byte
  z_stream z{};
  if (inflateInit2(&z, kGzipWindowBits) != Z_OK) return false;
  const size_t old_size = out.size();
  size_t produced = 0;
  size_t consumed = 0;
  int ret = Z_OK;
  bool ok = false;
  try {
    while (true) {
      if (z.avail_in == 0 && consumed < in.size()) {
        size_t chunk = std::min(in.size() - consumed, kMaxChunk);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
        z.avail_in = static_cast<uInt>(chunk);
        consumed += chunk;
      }
      if (produced == max_output + 1) break;  // over the limit
      size_t room = out.size() - old_size - produced;
      if (room == 0) {
        // Grow geometrically, but never past one byte over the limit (which tells "at the
        // limit" from "over it").
        size_t grow = std::max<size_t>(16 << 10, in.size() * 2 + produced);
        grow = std::min(grow, max_output + 1 - produced);
        out.resize(out.size() + grow);
        room = grow;
      }
      size_t chunk = std::min(room, kMaxChunk);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + old_size + produced);
      z.avail_out = static_cast<uInt>(chunk);
      ret = inflate(&z, Z_NO_FLUSH);
      size_t made = chunk - z.avail_out;
      produced += made;
      if (ret == Z_STREAM_END) {
        ok = z.avail_in == 0 && consumed == in.size() && produced <= max_output;
        break;
      }
      if (ret == Z_BUF_ERROR && made == 0 && z.avail_in == 0 && consumed == in.size()) {
        break;  // truncated: zlib wants input that is not there
      }
      if (ret != Z_OK && ret != Z_BUF_ERROR) break;
    }
  } catch (const std::bad_alloc&) {
    ok = false;
  }
  inflateEnd(&z);
  out.resize(ok ? old_size + produced : old_size);
  return ok;
}

}  // namespace djtrace
