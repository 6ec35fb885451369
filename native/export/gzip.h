// gzip (RFC 1952) compression of export request bodies, for "Content-Encoding: gzip" /
// "grpc-encoding: gzip", with zlib.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace djtrace {

// The level export compresses at: zlib's fastest. On OTLP batches it runs 2.5 times as fast as
// zlib's default (6) for about 5 % more bytes (bench/native/encode_bench.cc: 1.13 M against
// 0.46 M spans/s, 53.7 against 50.9 B/span), and the export worker shares the application's
// CPUs while the collector's link rarely lacks the bytes.
inline constexpr int kExportGzipLevel = 1;

// Appends the gzip-framed compression of `in` to `out`. `level` is zlib's: 0 (store) to 9, or -1
// for zlib's default. Returns false, leaving `out` as it was, on a bad level or when zlib or
// memory fails. The deflate state is kept per thread and reset between calls, so the batch
// worker does not pay zlib's setup (a few hundred KiB of tables) for every request.
bool GzipCompress(std::string_view in, std::string& out, int level = kExportGzipLevel) noexcept;

// Appends the decompression of one complete gzip member to `out`. Returns false, leaving `out`
// as it was, if the input is not exactly one valid gzip member (truncated, corrupt, bad CRC or
// trailing bytes) or if the output would exceed `max_output` bytes.
bool GzipDecompress(std::string_view in, std::string& out,
                    size_t max_output = size_t{256} << 20) noexcept;

}  // namespace djtrace
