// Decoding of the few protobuf messages an OTLP receiver sends back: google.rpc.Status (an
// OTLP/HTTP error body, or gRPC's grpc-status-details-bin) with the RetryInfo it may carry, and
// ExportTraceServiceResponse's partial_success. A minimal reader over the wire format: unknown
// fields are skipped, malformed input is rejected, nothing is allocated beyond the outputs.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace djtrace {

// Reads protobuf wire format from a byte range.
class ProtoReader {
 public:
  enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

  explicit ProtoReader(std::string_view data) noexcept : data_(data) {}
  bool done() const noexcept { return pos_ == data_.size(); }
  // Reads the next field's key; false at the end or on malformed input (check ok()).
  bool Next(uint32_t& field, uint32_t& wire_type) noexcept;
  bool ReadVarint(uint64_t& value) noexcept;
  bool ReadLengthDelimited(std::string_view& value) noexcept;
  bool Skip(uint32_t wire_type) noexcept;
  bool ok() const noexcept { return ok_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// google.rpc.Status, with the delay of a google.rpc.RetryInfo found among its details.
struct RpcStatus {
  int32_t code = 0;
  std::string message;
  std::optional<std::chrono::nanoseconds> retry_delay;
};

// Parses serialized google.rpc.Status bytes; false if malformed.
bool ParseRpcStatus(std::string_view bytes, RpcStatus& out);

// opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess.
struct ExportPartialSuccess {
  int64_t rejected_spans = 0;
  std::string error_message;
  bool present() const noexcept { return rejected_spans != 0 || !error_message.empty(); }
};

// Parses serialized ExportTraceServiceResponse bytes; false if malformed. An empty message is a
// full success.
bool ParseExportTraceServiceResponse(std::string_view bytes, ExportPartialSuccess& out);

}  // namespace djtrace
