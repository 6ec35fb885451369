// The exporter contract used by the span processors. Implementations are called from one thread
// at a time (the batch worker, or the caller under the simple processor's lock) and must never
// throw: every failure is reported through ExportResult.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "trace/span_data.h"

namespace djtrace {

enum class ExportResult : uint8_t { kSuccess = 0, kFailure = 1 };

class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  // Exports one batch. `deadline` bounds the whole call, retries included.
  virtual ExportResult Export(std::span<const SpanData* const> spans,
                              std::chrono::steady_clock::time_point deadline) noexcept = 0;
  virtual bool ForceFlush(std::chrono::steady_clock::time_point /*deadline*/) noexcept {
    return true;
  }
  virtual void Shutdown() noexcept {}
  // On while the process is about to exit: each export is then its last chance, so a failure
  // is not retried and a backoff in progress ends, and a collector that is down (or answers
  // "retry later") does not hold the exit up by the whole export timeout. Any thread.
  virtual void SetExiting(bool /*on*/) noexcept {}
  // Whether Export takes spans whose `shared_attributes` are still apart from `attributes`
  // (written ahead of them, as FlattenAttributes would place them). Otherwise the processors
  // merge them in first.
  virtual bool TakesSharedAttributes() const noexcept { return false; }
  // Called in the child after fork(), before any other call: drop connections and state
  // inherited from the parent. The parent's worker thread may have held the exporter's locks
  // at the moment of the fork, so this must not lock them: re-create them instead.
  virtual void AfterForkInChild() noexcept {}
};

}  // namespace djtrace
