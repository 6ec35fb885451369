#include "export/rpc_status.h"

#include <algorithm>

namespace djtrace {
namespace {

constexpr std::string_view kRetryInfoTypeSuffix = "/google.rpc.RetryInfo";
// A server asking for more than a day is as good as asking us to drop the batch; clamping
// keeps the nanosecond arithmetic far from overflow.
constexpr int64_t kMaxDelaySeconds = 86400;
constexpr size_t kMaxMessageKept = 4096;

bool ParseDuration(std::string_view bytes, std::chrono::nanoseconds& out) {
  ProtoReader r(bytes);
  int64_t seconds = 0;
  int64_t nanos = 0;
  uint32_t field, type;
  while (r.Next(field, type)) {
    uint64_t v;
    if (field == 1 && type == ProtoReader::kVarint) {
      if (!r.ReadVarint(v)) return false;
      seconds = static_cast<int64_t>(v);
    } else if (field == 2 && type == ProtoReader::kVarint) {
      if (!r.ReadVarint(v)) return false;
      nanos = static_cast<int32_t>(v);
    } else if (!r.Skip(type)) {
      return false;
    }
  }
  if (!r.ok()) return false;
  if (seconds < 0 || nanos < 0) {
    out = std::chrono::nanoseconds(0);
  } else if (seconds >= kMaxDelaySeconds) {
    out = std::chrono::seconds(kMaxDelaySeconds);
  } else {
    out = std::chrono::seconds(seconds) +
          std::chrono::nanoseconds(std::min<int64_t>(nanos, 999999999));
  }
  return true;
}

// google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }
bool ParseRetryInfo(std::string_view bytes, std::optional<std::chrono::nanoseconds>& out) {
  ProtoReader r(bytes);
  uint32_t field, type;
  std::chrono::nanoseconds delay{0};  // RetryInfo without a delay: retry, at our own pace
  while (r.Next(field, type)) {
    if (field == 1 && type == ProtoReader::kLengthDelimited) {
      std::string_view duration;
      if (!r.ReadLengthDelimited(duration) || !ParseDuration(duration, delay)) return false;
    } else if (!r.Skip(type)) {
      return false;
    }
  }
  if (!r.ok()) return false;
  out = delay;
  return true;
}

// google.protobuf.Any { string type_url = 1; bytes value = 2; }
bool ParseDetail(std::string_view bytes, RpcStatus& out) {
  ProtoReader r(bytes);
  std::string_view type_url, value;
  uint32_t field, type;
  while (r.Next(field, type)) {
    if (field == 1 && type == ProtoReader::kLengthDelimited) {
      if (!r.ReadLengthDelimited(type_url)) return false;
    } else if (field == 2 && type == ProtoReader::kLengthDelimited) {
      if (!r.ReadLengthDelimited(value)) return false;
    } else if (!r.Skip(type)) {
      return false;
    }
  }
  if (!r.ok()) return false;
  if (type_url.size() >= kRetryInfoTypeSuffix.size() &&
      type_url.substr(type_url.size() - kRetryInfoTypeSuffix.size()) == kRetryInfoTypeSuffix) {
    return ParseRetryInfo(value, out.retry_delay);
  }
  return true;
}

}  // namespace

bool ProtoReader::Next(uint32_t& field, uint32_t& wire_type) noexcept {
  if (!ok_ || done()) return false;
  uint64_t key;
  if (!ReadVarint(key)) return false;
  field = static_cast<uint32_t>(key >> 3);
  wire_type = static_cast<uint32_t>(key & 7);
  if (field == 0 || key >> 3 > 0x1fffffff) {
    ok_ = false;
    return false;
  }
  return true;
}

bool ProtoReader::ReadVarint(uint64_t& value) noexcept {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) break;
    uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  ok_ = false;
  return false;
}

bool ProtoReader::ReadLengthDelimited(std::string_view& value) noexcept {
  uint64_t len;
  if (!ReadVarint(len)) return false;
  if (len > data_.size() - pos_) {
    ok_ = false;
    return false;
  }
  value = data_.substr(pos_, static_cast<size_t>(len));
  pos_ += static_cast<size_t>(len);
  return true;
}

bool ProtoReader::Skip(uint32_t wire_type) noexcept {
  uint64_t ignored;
  std::string_view ignored_bytes;
  size_t width = 0;
  switch (wire_type) {
    case kVarint:
      return ReadVarint(ignored);
    case kLengthDelimited:
      return ReadLengthDelimited(ignored_bytes);
    case kFixed64:
      width = 8;
      break;
    case kFixed32:
      width = 4;
      break;
    default:  // groups (3, 4) are not used by any message read here
      ok_ = false;
      return false;
  }
  if (data_.size() - pos_ < width) {
    ok_ = false;
    return false;
  }
  pos_ += width;
  return true;
}

bool ParseRpcStatus(std::string_view bytes, RpcStatus& out) {
  out = RpcStatus{};
  ProtoReader r(bytes);
  uint32_t field, type;
  while (r.Next(field, type)) {
    if (field == 1 && type == ProtoReader::kVarint) {
      uint64_t code;
      if (!r.ReadVarint(code)) return false;
      out.code = static_cast<int32_t>(code);
    } else if (field == 2 && type == ProtoReader::kLengthDelimited) {
      std::string_view message;
      if (!r.ReadLengthDelimited(message)) return false;
      out.message.assign(message.substr(0, kMaxMessageKept));
    } else if (field == 3 && type == ProtoReader::kLengthDelimited) {
      std::string_view detail;
      if (!r.ReadLengthDelimited(detail) || !ParseDetail(detail, out)) return false;
    } else if (!r.Skip(type)) {
      return false;
    }
  }
  return r.ok();
}

bool ParseExportTraceServiceResponse(std::string_view bytes, ExportPartialSuccess& out) {
  out = ExportPartialSuccess{};
  ProtoReader r(bytes);
  uint32_t field, type;
  while (r.Next(field, type)) {
    if (field == 1 && type == ProtoReader::kLengthDelimited) {
      std::string_view partial;
      if (!r.ReadLengthDelimited(partial)) return false;
      ProtoReader p(partial);
      while (p.Next(field, type)) {
        if (field == 1 && type == ProtoReader::kVarint) {
          uint64_t rejected;
          if (!p.ReadVarint(rejected)) return false;
          out.rejected_spans = static_cast<int64_t>(rejected);
        } else if (field == 2 && type == ProtoReader::kLengthDelimited) {
          std::string_view message;
          if (!p.ReadLengthDelimited(message)) return false;
          out.error_message.assign(message.substr(0, kMaxMessageKept));
        } else if (!p.Skip(type)) {
          return false;
        }
      }
      if (!p.ok()) return false;
    } else if (!r.Skip(type)) {
      return false;
    }
  }
  return r.ok();
}

}  // namespace djtrace
