#include "export/stream_exporters.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "export/otlp_json.h"

namespace djtrace {

bool WriteAll(int fd, const char* data, size_t size) noexcept {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

ConsoleExporter::ConsoleExporter(WriteFn write, ConsoleOptions options, size_t max_pending_spans,
                                 std::chrono::milliseconds max_hold)
    : write_(std::move(write)),
      options_(options),
      max_pending_spans_(max_pending_spans),
      max_hold_(max_hold) {}

ConsoleExporter::WriteFn ConsoleExporter::FdWriter(int fd) {
  return [fd](const std::string& text) { WriteAll(fd, text.data(), text.size()); };
}

void ConsoleExporter::RenderAndWrite(std::vector<SpanData>& spans) {
  std::vector<const SpanData*> view;
  view.reserve(spans.size());
  for (const auto& s : spans) view.push_back(&s);
  std::string out;
  RenderTraceTree(std::span<const SpanData* const>(view.data(), view.size()), options_, out);
  write_(out);
}

ExportResult ConsoleExporter::Export(std::span<const SpanData* const> spans,
                                     std::chrono::steady_clock::time_point) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return ExportResult::kFailure;
    const auto now = std::chrono::steady_clock::now();
    std::vector<TraceId> complete;
    for (const SpanData* s : spans) {
      auto [it, inserted] = pending_.try_emplace(s->trace_id);
      if (inserted) it->second.first_seen = now;
      it->second.spans.push_back(*s);
      ++pending_count_;
      // A local root: no parent, or a parent in another process. Its end closes the tree.
      if (IsZero(s->parent_span_id) || (s->flags & 0x200u)) complete.push_back(s->trace_id);
    }
    for (const TraceId& id : complete) {
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      pending_count_ -= it->second.spans.size();
      RenderAndWrite(it->second.spans);
      pending_.erase(it);
    }
    // Bounded: print trees that waited too long or when too much is held.
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (pending_count_ > max_pending_spans_ || now - it->second.first_seen > max_hold_) {
        pending_count_ -= it->second.spans.size();
        RenderAndWrite(it->second.spans);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    return ExportResult::kSuccess;
  } catch (...) {
    return ExportResult::kFailure;
  }
}

void ConsoleExporter::FlushAllLocked() {
  for (auto& [id, pending] : pending_) RenderAndWrite(pending.spans);
  pending_.clear();
  pending_count_ = 0;
}

bool ConsoleExporter::ForceFlush(std::chrono::steady_clock::time_point) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    FlushAllLocked();
    return true;
  } catch (...) {
    return false;
  }
}

void ConsoleExporter::AfterForkInChild() noexcept {
  // The parent's worker may have held the lock at the fork; the parent prints its own spans.
  new (&mu_) std::mutex();
  pending_.clear();
  pending_count_ = 0;
}

void ConsoleExporter::Shutdown() noexcept {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    FlushAllLocked();
    shutdown_ = true;
  } catch (...) {
  }
}

OtlpJsonFileExporter::OtlpJsonFileExporter(std::string path) : path_(std::move(path)) {}

OtlpJsonFileExporter::~OtlpJsonFileExporter() {
  if (fd_ >= 0) ::close(fd_);
}

bool OtlpJsonFileExporter::EnsureOpenLocked() {
  if (fd_ >= 0) return true;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return fd_ >= 0;
}

ExportResult OtlpJsonFileExporter::Export(std::span<const SpanData* const> spans,
                                          std::chrono::steady_clock::time_point) noexcept {
  try {
    std::string line;
    EncodeExportTraceServiceRequestJson(spans, line);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ || !EnsureOpenLocked()) return ExportResult::kFailure;
    return WriteAll(fd_, line.data(), line.size()) ? ExportResult::kSuccess
                                                   : ExportResult::kFailure;
  } catch (...) {
    return ExportResult::kFailure;
  }
}

void OtlpJsonFileExporter::Shutdown() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void OtlpJsonFileExporter::AfterForkInChild() noexcept {
  // The parent's worker may have held the lock at the fork; nothing else runs here yet.
  new (&mu_) std::mutex();
  // The inherited descriptor works (O_APPEND), but the child reopens its own so that closing
  // it never affects the parent's.
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace djtrace
