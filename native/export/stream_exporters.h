// Exporters that write to the local machine: a console exporter printing each trace as a tree
// once its local root has ended, and a file exporter appending OTLP/JSON lines (the
// OpenTelemetry Collector's file-exporter format) that several processes may share.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "export/console.h"
#include "export/exporter.h"

namespace djtrace {

class ConsoleExporter final : public SpanExporter {
 public:
  using WriteFn = std::function<void(const std::string&)>;
  // Hands rendered text to `write`. Spans of a trace are held until the trace's local root
  // ends, at most `max_pending_spans` of them and for at most `max_hold`, so the tree prints
  // whole.
  ConsoleExporter(WriteFn write, ConsoleOptions options, size_t max_pending_spans = 10000,
                  std::chrono::milliseconds max_hold = std::chrono::seconds(30));
  // Writes to a file descriptor (not owned).
  static WriteFn FdWriter(int fd);
  ExportResult Export(std::span<const SpanData* const> spans,
                      std::chrono::steady_clock::time_point deadline) noexcept override;
  bool ForceFlush(std::chrono::steady_clock::time_point deadline) noexcept override;
  void Shutdown() noexcept override;
  void AfterForkInChild() noexcept override;

 private:
  struct Pending {
    std::vector<SpanData> spans;
    std::chrono::steady_clock::time_point first_seen;
  };
  void RenderAndWrite(std::vector<SpanData>& spans);
  void FlushAllLocked();

  WriteFn write_;
  ConsoleOptions options_;
  size_t max_pending_spans_;
  std::chrono::milliseconds max_hold_;
  std::mutex mu_;
  std::map<TraceId, Pending> pending_;
  size_t pending_count_ = 0;
  bool shutdown_ = false;
};

class OtlpJsonFileExporter final : public SpanExporter {
 public:
  // Opens lazily, appends one line per batch with a single write(2) on an O_APPEND descriptor,
  // so lines from several processes never interleave.
  explicit OtlpJsonFileExporter(std::string path);
  ~OtlpJsonFileExporter() override;
  ExportResult Export(std::span<const SpanData* const> spans,
                      std::chrono::steady_clock::time_point deadline) noexcept override;
  void Shutdown() noexcept override;
  void AfterForkInChild() noexcept override;
  const std::string& path() const { return path_; }

 private:
  bool EnsureOpenLocked();
  std::string path_;
  std::mutex mu_;
  int fd_ = -1;
  bool shutdown_ = false;
};

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
bool WriteAll(int fd, const char* data, size_t size) noexcept;

}  // namespace djtrace
