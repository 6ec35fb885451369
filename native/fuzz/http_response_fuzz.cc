// Fuzzes the HTTP/1.1 response parser: arbitrary bytes, fed whole and then in pieces whose sizes
// come from the input, must never crash, and both feedings must agree.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "export/http_client.h"

namespace {

djtrace::HttpResponseParser::Status Run(std::string_view data, size_t step, bool eof,
                                        djtrace::HttpResponse& response) {
  djtrace::HttpResponseParser parser(1024);
  parser.Reset(response);
  auto status = djtrace::HttpResponseParser::Status::kIncomplete;
  size_t pos = 0;
  while (pos < data.size() && status == djtrace::HttpResponseParser::Status::kIncomplete) {
    size_t used = 0;
    status = parser.Feed(data.substr(pos, step), used);
    if (used > step) __builtin_trap();
    pos += used;
    if (used == 0 && status == djtrace::HttpResponseParser::Status::kIncomplete) break;
  }
  if (eof && status == djtrace::HttpResponseParser::Status::kIncomplete) {
    status = parser.FinishAtEof();
  }
  if (response.body.size() > 1024 || response.body.size() > response.body_size) __builtin_trap();
  return status;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 17;
  const bool eof = data[0] & 0x80;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  djtrace::HttpResponse whole, pieces;
  auto a = Run(text, text.size() + 1, eof, whole);
  auto b = Run(text, step, eof, pieces);
  if (a != b) __builtin_trap();
  if (a == djtrace::HttpResponseParser::Status::kComplete &&
      (whole.status != pieces.status || whole.body != pieces.body ||
       whole.headers != pieces.headers || whole.keep_alive != pieces.keep_alive)) {
    __builtin_trap();
  }
  return 0;
}
