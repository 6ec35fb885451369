// Hands exported spans back to the threads that start spans, for reuse.
//
// A span is built on an application thread and destroyed on the export worker. With glibc's
// allocator every one of those cross-thread frees lands in the allocating thread's arena
// under its lock, and that thread's own per-thread cache stays empty, so every allocation of
// the next span takes the slow path and contends with the worker. Returning the exported
// SpanData objects instead, and clearing them on the thread that reuses them, keeps both the
// allocation and the frees on the application thread.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "trace/span_data.h"

namespace djtrace {

class SpanPool {
 public:
  // Returned spans kept at most; beyond that they are freed where they are returned.
  static constexpr size_t kCapacity = 1024;
  // Spans a thread takes from the shared list at once (one lock per this many spans).
  static constexpr size_t kRefill = 64;

  static SpanPool& Global();

  // Takes spans that are done with (their vector is emptied). Any thread. Spans too large to
  // be worth keeping (many attributes or events) are freed.
  void Return(std::vector<SpanPtr>& spans) noexcept;

  // A SpanData equal to a default-constructed one, reused when one was returned.
  SpanPtr Take();

  // Spans held in the shared list (tests).
  size_t SharedSize();

  // Fork handlers: the shared list's lock is held across fork() and released on both sides.
  void PrepareFork() { mu_.lock(); }
  void AfterFork() { mu_.unlock(); }

 private:
  std::mutex mu_;
  std::vector<SpanPtr> returned_;
};

// Resets every field of `span` to its default, keeping the memory its strings and vectors
// hold. Exposed for the test that keeps it in step with SpanData's fields.
void ClearForReuse(SpanData& span) noexcept;

}  // namespace djtrace
