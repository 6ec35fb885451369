// Exporters that keep spans in memory or hand them to a callback: for tests, for
// `djtrace.testing`, and for span exporters written in Python.
#pragma once

#include <functional>
#include <mutex>
#include <new>
#include <vector>

#include "export/exporter.h"

namespace djtrace {

class InMemoryExporter final : public SpanExporter {
 public:
  ExportResult Export(std::span<const SpanData* const> spans,
                      std::chrono::steady_clock::time_point) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return ExportResult::kFailure;
    try {
      for (const SpanData* s : spans) spans_.push_back(*s);
    } catch (...) {
      return ExportResult::kFailure;
    }
    return ExportResult::kSuccess;
  }
  void Shutdown() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  void AfterForkInChild() noexcept override {
    new (&mu_) std::mutex();  // the parent's worker may have held it at the fork
    spans_.clear();
  }
  std::vector<SpanData> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(spans_, {});
  }
  std::vector<SpanData> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<SpanData> spans_;
  bool stopped_ = false;
};

class CallbackExporter final : public SpanExporter {
 public:
  using ExportFn = std::function<ExportResult(std::span<const SpanData* const>)>;
  using VoidFn = std::function<void()>;
  CallbackExporter(ExportFn export_fn, VoidFn shutdown_fn)
      : export_(std::move(export_fn)), shutdown_(std::move(shutdown_fn)) {}
  ExportResult Export(std::span<const SpanData* const> spans,
                      std::chrono::steady_clock::time_point) noexcept override {
    try {
      return export_(spans);
    } catch (...) {
      return ExportResult::kFailure;
    }
  }
  void Shutdown() noexcept override {
    try {
      if (shutdown_) shutdown_();
    } catch (...) {
    }
  }

 private:
  ExportFn export_;
  VoidFn shutdown_;
};

}  // namespace djtrace
