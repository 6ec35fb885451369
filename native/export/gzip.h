// gzip (RFC 1952) compression of export request bodies, for "Content-Encoding: gzip" /
// "grpc-encoding: gzip", with zlib.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace djtrace {

// Appends the gzip-framed compression of `in` to `out`. `level` is zlib's: 0 (store) to 9, or -1
// for zlib's default. Returns false, leaving `out` as it was, on a bad level or when zlib or
// memory fails. The deflate state is kept per thread and reset between calls, so the batch
// worker does not pay zlib's setup (a few hundred KiB of tables) for every request.
bool GzipCompress(std::string_view in, std::string& out, int level = 6) noexcept;

// Appends the decompression of one complete gzip member to `out`. Returns false, leaving `out`
// as it was, if the input is not exactly one valid gzip member (truncated, corrupt, bad CRC or
// trailing bytes) or if the output would exceed `max_output` bytes.
bool GzipDecompress(std::string_view in, std::string& out,
                    size_t max_output = size_t{256} << 20) noexcept;

}  // namespace djtrace
