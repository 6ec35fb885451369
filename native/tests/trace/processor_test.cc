#include "trace/processor.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "trace/memory_exporter.h"
#include "trace/span_pool.h"

namespace djtrace {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Strings = std::vector<std::string>;

// Records every batch it is given. Can be blocked: Export then announces that it entered and
// waits until released, which lets a test hold the worker thread inside an export.
class FakeExporter final : public SpanExporter {
 public:
  ExportResult Export(std::span<const SpanData* const> spans, Clock::time_point) noexcept override {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !blocked_; });
    std::vector<SpanData> batch;
    for (const SpanData* s : spans) batch.push_back(*s);
    batches_.push_back(std::move(batch));
    threads_.push_back(std::this_thread::get_id());
    exiting_at_export_.push_back(exiting_);
    cv_.notify_all();
    return result_;
  }
  bool ForceFlush(Clock::time_point) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++force_flush_calls_;
    return force_flush_result_;
  }
  void Shutdown() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++shutdown_calls_;
  }
  void AfterForkInChild() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++after_fork_calls_;
  }
  void SetExiting(bool on) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    exiting_ = on;
  }

  void Block() {
    std::lock_guard<std::mutex> lock(mu_);
    blocked_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    blocked_ = false;
    cv_.notify_all();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.clear();
    threads_.clear();
  }
  void SetResult(ExportResult r) {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = r;
  }
  void SetForceFlushResult(bool r) {
    std::lock_guard<std::mutex> lock(mu_);
    force_flush_result_ = r;
  }
  // Waits until Export has been entered `n` times in all.
  bool WaitEntered(int n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return entered_ >= n; });
  }
  // Waits until `n` spans in all were exported.
  bool WaitSpans(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return SpanCountLocked() >= n; });
  }

  std::vector<size_t> BatchSizes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<size_t> sizes;
    for (const auto& b : batches_) sizes.push_back(b.size());
    return sizes;
  }
  Strings Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    Strings names;
    for (const auto& b : batches_)
      for (const auto& s : b) names.push_back(s.name);
    return names;
  }
  std::vector<SpanData> Spans() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<SpanData> all;
    for (const auto& b : batches_) all.insert(all.end(), b.begin(), b.end());
    return all;
  }
  size_t SpanCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return SpanCountLocked();
  }
  std::vector<std::thread::id> Threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }
  int shutdown_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return shutdown_calls_;
  }
  int force_flush_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return force_flush_calls_;
  }
  int after_fork_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return after_fork_calls_;
  }
  bool exiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return exiting_;
  }
  // For each batch, whether SetExiting was on when it was exported.
  std::vector<bool> ExitingAtExport() const {
    std::lock_guard<std::mutex> lock(mu_);
    return exiting_at_export_;
  }

 private:
  size_t SpanCountLocked() const {
    size_t n = 0;
    for (const auto& b : batches_) n += b.size();
    return n;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
  int entered_ = 0;
  ExportResult result_ = ExportResult::kSuccess;
  bool force_flush_result_ = true;
  std::vector<std::vector<SpanData>> batches_;
  std::vector<std::thread::id> threads_;
  int shutdown_calls_ = 0;
  int force_flush_calls_ = 0;
  int after_fork_calls_ = 0;
  bool exiting_ = false;
  std::vector<bool> exiting_at_export_;
};

SpanPtr MakeSpan(const std::string& name, bool sampled = true) {
  auto span = std::make_unique<SpanData>();
  span->name = name;
  span->trace_id.fill(0x11);
  span->span_id.fill(0x22);
  span->flags = (sampled ? 0x01u : 0x00u) | 0x100u;
  return span;
}

BatchOptions Options(uint32_t queue, std::chrono::milliseconds delay, uint32_t batch) {
  BatchOptions o;
  o.max_queue_size = queue;
  o.schedule_delay = delay;
  o.max_export_batch_size = batch;
  o.export_timeout = 30s;
  return o;
}

Strings Numbered(const std::string& prefix, int n) {
  Strings s;
  for (int i = 0; i < n; ++i) s.push_back(prefix + std::to_string(i));
  return s;
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// ----- BatchSpanProcessor

TEST(BatchSpanProcessorTest, AFullBatchIsExportedWithoutWaitingForTheDelay) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 4));
  for (int i = 0; i < 3; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(exporter->SpanCount(), 0u);  // below the batch size: waits for the delay
  p.OnEnd(MakeSpan("s3"));
  ASSERT_TRUE(exporter->WaitSpans(4));
  EXPECT_EQ(exporter->BatchSizes(), (std::vector<size_t>{4}));
  EXPECT_EQ(exporter->Names(), Numbered("s", 4));
  // Exported on the worker thread, not this one.
  EXPECT_NE(exporter->Threads()[0], std::this_thread::get_id());
}

TEST(BatchSpanProcessorTest, ExportedSpansGoBackToThePoolForReuse) {
  // The worker hands exported spans back, so that the next spans started on this thread
  // reuse them instead of allocating what the worker would free on another thread.
  SpanPool& pool = SpanPool::Global();
  while (pool.SharedSize() > 0) pool.Take();
  for (size_t i = 0; i < SpanPool::kRefill; ++i) pool.Take();  // empties this thread's cache
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  std::vector<const SpanData*> ended;
  for (int i = 0; i < 5; ++i) {
    SpanPtr span = MakeSpan("s" + std::to_string(i));
    ended.push_back(span.get());
    p.OnEnd(std::move(span));
  }
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), Numbered("s", 5));  // exported before being handed back
  ASSERT_EQ(pool.SharedSize(), 5u);
  for (int i = 0; i < 5; ++i) {
    SpanPtr reused = pool.Take();
    EXPECT_NE(std::find(ended.begin(), ended.end(), reused.get()), ended.end());
    EXPECT_TRUE(reused->name.empty());
  }
}

TEST(BatchSpanProcessorTest, TheWorkerIsABatchThread) {
  // A SCHED_BATCH worker does not preempt the request thread that wakes it.
  auto exporter = std::make_shared<FakeExporter>();
  std::atomic<int> policy{-1};
  BatchSpanProcessor p(exporter, Options(100, 60s, 512),
                       [&policy](SpanData&) { policy = sched_getscheduler(0); });
  p.OnEnd(MakeSpan("a"));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(policy.load(), SCHED_BATCH);
  EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);  // the caller's own policy is untouched
}

TEST(BatchSpanProcessorTest, BatchesNeverExceedTheBatchSizeAndKeepOrder) {
  auto exporter = std::make_shared<FakeExporter>();
  exporter->Block();  // so that all 10 spans are queued before the worker takes any
  BatchSpanProcessor p(exporter, Options(100, 60s, 4));
  for (int i = 0; i < 4; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  ASSERT_TRUE(exporter->WaitEntered(1));
  for (int i = 4; i < 14; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  exporter->Release();
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->BatchSizes(), (std::vector<size_t>{4, 4, 4, 2}));
  EXPECT_EQ(exporter->Names(), Numbered("s", 14));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.spans_queued, 14u);
  EXPECT_EQ(st.spans_exported, 14u);
  EXPECT_EQ(st.batches_exported, 4u);
  EXPECT_EQ(st.queue_length, 0u);
}

TEST(BatchSpanProcessorTest, ScheduleDelayTriggersExport) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 100ms, 512));
  const auto start = Clock::now();
  p.OnEnd(MakeSpan("a"));
  p.OnEnd(MakeSpan("b"));
  p.OnEnd(MakeSpan("c"));
  ASSERT_TRUE(exporter->WaitSpans(3));
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 90ms);  // not before the delay...
  EXPECT_LT(elapsed, 4s);    // ...and without any flush
  EXPECT_EQ(exporter->BatchSizes(), (std::vector<size_t>{3}));
  // A second round after an idle period is exported on the delay again.
  p.OnEnd(MakeSpan("d"));
  ASSERT_TRUE(exporter->WaitSpans(4));
  EXPECT_EQ(exporter->Names(), (Strings{"a", "b", "c", "d"}));
}

TEST(BatchSpanProcessorTest, ZeroDelayExportsPromptlyAndDoesNotSpinWhenIdle) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 0ms, 512));
  p.OnEnd(MakeSpan("a"));
  ASSERT_TRUE(exporter->WaitSpans(1, 2s));
  // An idle worker must sleep: with a timer of 0 it would wake up in a loop and burn a core.
  const double cpu_before = ProcessCpuSeconds();
  std::this_thread::sleep_for(500ms);
  const double cpu_used = ProcessCpuSeconds() - cpu_before;
  EXPECT_LT(cpu_used, 0.03) << "the idle worker used " << cpu_used << " s of CPU in 0.5 s";
  p.OnEnd(MakeSpan("b"));
  ASSERT_TRUE(exporter->WaitSpans(2, 2s));
}

TEST(BatchSpanProcessorTest, AFullQueueDropsAndCountsExactly) {
  auto exporter = std::make_shared<FakeExporter>();
  exporter->Block();
  BatchSpanProcessor p(exporter, Options(4, 60s, 2));
  // Two spans make a batch: the worker takes them and blocks inside the exporter.
  p.OnEnd(MakeSpan("s0"));
  p.OnEnd(MakeSpan("s1"));
  ASSERT_TRUE(exporter->WaitEntered(1));
  EXPECT_EQ(p.Stats().queue_length, 0u);
  // The queue holds 4 more; the next 3 are dropped.
  for (int i = 2; i < 9; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.queue_length, 4u);
  EXPECT_EQ(st.spans_queued, 6u);
  EXPECT_EQ(st.spans_dropped, 3u);
  exporter->Release();
  ASSERT_TRUE(p.ForceFlush(5s));
  st = p.Stats();
  EXPECT_EQ(st.spans_exported, 6u);
  EXPECT_EQ(st.batches_exported, 3u);
  EXPECT_EQ(st.spans_dropped, 3u);
  EXPECT_EQ(st.queue_length, 0u);
  EXPECT_EQ(exporter->Names(), Numbered("s", 6));
  EXPECT_EQ(exporter->BatchSizes(), (std::vector<size_t>{2, 2, 2}));
}

TEST(BatchSpanProcessorTest, ForceFlushExportsEverythingQueued) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(2048, 60s, 512));
  for (int i = 0; i < 100; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  EXPECT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), Numbered("s", 100));
  EXPECT_EQ(exporter->force_flush_calls(), 1);
  EXPECT_EQ(p.Stats().queue_length, 0u);
  // Nothing queued: a flush succeeds at once.
  EXPECT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->SpanCount(), 100u);
}

TEST(BatchSpanProcessorTest, ForceFlushWithoutSpansSucceeds) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(10, 60s, 5));
  EXPECT_TRUE(p.ForceFlush(1s));
  EXPECT_EQ(exporter->SpanCount(), 0u);
}

TEST(BatchSpanProcessorTest, ForceFlushTimesOutWithAHangingExporter) {
  auto exporter = std::make_shared<FakeExporter>();
  exporter->Block();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  p.OnEnd(MakeSpan("a"));
  const auto start = Clock::now();
  EXPECT_FALSE(p.ForceFlush(100ms));
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 90ms);
  EXPECT_LT(elapsed, 4s);
  EXPECT_EQ(exporter->force_flush_calls(), 0);
  exporter->Release();
  EXPECT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), (Strings{"a"}));
}

TEST(BatchSpanProcessorTest, ShutdownExportsWhatIsQueuedThenDrops) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  for (int i = 0; i < 5; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  EXPECT_TRUE(p.Shutdown(5s));
  EXPECT_EQ(exporter->Names(), Numbered("s", 5));
  EXPECT_EQ(exporter->shutdown_calls(), 1);
  p.OnEnd(MakeSpan("late"));
  p.OnEnd(MakeSpan("later"));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.spans_dropped, 2u);
  EXPECT_EQ(st.spans_queued, 5u);
  EXPECT_EQ(st.queue_length, 0u);
  EXPECT_TRUE(p.ForceFlush(1s));
  EXPECT_TRUE(p.Shutdown(1s));  // a second shutdown is a no-op
  EXPECT_EQ(exporter->shutdown_calls(), 1);
  EXPECT_EQ(exporter->SpanCount(), 5u);
}

TEST(BatchSpanProcessorTest, ShutdownExportsTheRestWithTheExporterExiting) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  p.OnEnd(MakeSpan("a"));
  ASSERT_TRUE(p.ForceFlush(5s));
  p.OnEnd(MakeSpan("b"));
  EXPECT_TRUE(p.Shutdown(5s));
  // The flush before was an ordinary one; the export at shutdown is not retried.
  EXPECT_EQ(exporter->ExitingAtExport(), (std::vector<bool>{false, true}));
}

TEST(BatchSpanProcessorTest, SetExitingReachesTheExporterAndCanBeUndone) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  p.SetExiting(true);
  p.OnEnd(MakeSpan("a"));
  ASSERT_TRUE(p.ForceFlush(5s));
  p.SetExiting(false);
  p.OnEnd(MakeSpan("b"));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->ExitingAtExport(), (std::vector<bool>{true, false}));
}

TEST(BatchSpanProcessorTest, ShutdownWithoutAWorkerExportsTheQueue) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  EXPECT_TRUE(p.Shutdown(5s));  // never started a worker
  EXPECT_EQ(exporter->shutdown_calls(), 1);
  EXPECT_EQ(exporter->SpanCount(), 0u);
}

TEST(BatchSpanProcessorTest, ShutdownGivesUpOnAHangingExporter) {
  auto exporter = std::make_shared<FakeExporter>();
  exporter->Block();
  {
    BatchSpanProcessor p(exporter, Options(100, 60s, 512));
    p.OnEnd(MakeSpan("a"));
    p.OnEnd(MakeSpan("b"));
    EXPECT_FALSE(p.ForceFlush(0ms));  // starts the export, which hangs
    ASSERT_TRUE(exporter->WaitEntered(1));
    const auto start = Clock::now();
    EXPECT_FALSE(p.Shutdown(100ms));
    const auto elapsed = Clock::now() - start;
    EXPECT_GE(elapsed, 90ms);
    EXPECT_LT(elapsed, 4s);
    EXPECT_EQ(exporter->shutdown_calls(), 1);  // to cancel the export still in flight
    p.OnEnd(MakeSpan("late"));
    EXPECT_EQ(p.Stats().spans_dropped, 1u);
    EXPECT_TRUE(p.Shutdown(100ms));  // already shut down
  }
  // The processor is gone while its worker is still inside the exporter; once let go, the
  // worker finishes on state it shares, which the sanitizer build checks.
  exporter->Release();
  ASSERT_TRUE(exporter->WaitSpans(2));
  EXPECT_EQ(exporter->Names(), (Strings{"a", "b"}));
  std::this_thread::sleep_for(20ms);
}

TEST(BatchSpanProcessorTest, DestructorExportsQueuedSpans) {
  auto exporter = std::make_shared<FakeExporter>();
  {
    BatchSpanProcessor p(exporter, Options(100, 60s, 512));
    p.OnEnd(MakeSpan("a"));
    p.OnEnd(MakeSpan("b"));
  }
  EXPECT_EQ(exporter->Names(), (Strings{"a", "b"}));
  EXPECT_EQ(exporter->shutdown_calls(), 1);
}

TEST(BatchSpanProcessorTest, TransformIsAppliedBeforeExport) {
  auto exporter = std::make_shared<FakeExporter>();
  std::atomic<int> calls{0};
  BatchSpanProcessor p(exporter, Options(100, 60s, 512), [&calls](SpanData& s) {
    ++calls;
    s.name = "redacted:" + s.name;
    s.attributes.push_back(Attribute{"transformed", true});
  });
  p.OnEnd(MakeSpan("a"));
  p.OnEnd(MakeSpan("b"));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(calls.load(), 2);
  auto spans = exporter->Spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].name, "redacted:a");
  ASSERT_EQ(spans[1].attributes.size(), 1u);
  EXPECT_EQ(spans[1].attributes[0].key, "transformed");
}

TEST(BatchSpanProcessorTest, SetTransformAppliesToBatchesTakenAfterwards) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  p.OnEnd(MakeSpan("a"));
  ASSERT_TRUE(p.ForceFlush(5s));
  p.OnEnd(MakeSpan("b"));  // queued before the transform is set, taken after
  p.SetTransform([](SpanData& s) { s.name += "!"; });
  p.OnEnd(MakeSpan("c"));
  ASSERT_TRUE(p.ForceFlush(5s));
  p.SetTransform({});
  p.OnEnd(MakeSpan("d"));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), (Strings{"a", "b!", "c!", "d"}));
}

// Takes spans with their shared attributes apart, as the OTLP exporters do; keeps copies.
class ApartExporter final : public SpanExporter {
 public:
  ExportResult Export(std::span<const SpanData* const> spans, Clock::time_point) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SpanData* s : spans) spans_.push_back(*s);
    return ExportResult::kSuccess;
  }
  bool TakesSharedAttributes() const noexcept override { return true; }
  std::vector<SpanData> Spans() const {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<SpanData> spans_;
};

// A transform that treats each attribute on its own ("secret" becomes "***"), and its check.
void MaskSecrets(SpanData& s) {
  for (Attribute& a : s.attributes) {
    if (auto* v = std::get_if<std::string>(&a.value); v && *v == "secret") *v = "***";
  }
}
bool HasNoSecret(const Attributes& attributes) {
  return std::none_of(attributes.begin(), attributes.end(), [](const Attribute& a) {
    const auto* v = std::get_if<std::string>(&a.value);
    return v && *v == "secret";
  });
}

SpanPtr SpanSharing(const std::string& name, std::shared_ptr<const Attributes> block) {
  SpanPtr s = MakeSpan(name);
  s->attributes = {Attribute{"own", std::string("secret")}};
  s->shared_attributes = std::move(block);
  return s;
}

std::string StringAt(const Attributes& attributes, size_t i) {
  return std::get<std::string>(attributes.at(i).value);
}

TEST(BatchSpanProcessorTest, ASharedBlockTheTransformLeavesAsItIsStaysApart) {
  auto exporter = std::make_shared<ApartExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 2));
  std::atomic<int> checks{0};
  p.SetTransform(MaskSecrets, [&checks](const Attributes& a) {
    ++checks;
    return HasNoSecret(a);
  });
  auto clean = std::make_shared<const Attributes>(Attributes{{"db", std::string("sqlite")}});
  auto dirty = std::make_shared<const Attributes>(Attributes{{"path", std::string("secret")}});
  for (int i = 0; i < 5; ++i) p.OnEnd(SpanSharing("clean", clean));  // batches of 2: 3 batches
  for (int i = 0; i < 3; ++i) p.OnEnd(SpanSharing("dirty", dirty));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(checks.load(), 2);  // once per block, not per span or per batch
  auto spans = exporter->Spans();
  ASSERT_EQ(spans.size(), 8u);
  for (const SpanData& s : spans) {
    if (s.name == "clean") {
      EXPECT_EQ(s.shared_attributes, clean);  // not copied, not handed to the transform
      ASSERT_EQ(s.attributes.size(), 1u);
      EXPECT_EQ(StringAt(s.attributes, 0), "***");
    } else {
      EXPECT_EQ(s.shared_attributes, nullptr);  // merged, then transformed with the span
      ASSERT_EQ(s.attributes.size(), 2u);
      EXPECT_EQ(s.attributes[0].key, "path");
      EXPECT_EQ(StringAt(s.attributes, 0), "***");
      EXPECT_EQ(StringAt(s.attributes, 1), "***");
    }
  }
  EXPECT_EQ(StringAt(*dirty, 0), "secret");  // the block itself is never changed

  // A new transform takes its own verdicts.
  p.SetTransform(MaskSecrets, [&checks](const Attributes& a) {
    ++checks;
    return HasNoSecret(a);
  });
  p.OnEnd(SpanSharing("clean", clean));
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(checks.load(), 3);
}

TEST(BatchSpanProcessorTest, SharedAttributesAreMergedUnlessTheExporterAndTransformAllowIt) {
  auto block = std::make_shared<const Attributes>(Attributes{{"db", std::string("sqlite")}});
  auto merged = [](const SpanData& s) { return !s.shared_attributes && s.attributes.size() == 2; };
  {  // an exporter that wants them merged: the check is not even asked
    auto exporter = std::make_shared<FakeExporter>();
    BatchSpanProcessor p(exporter, Options(100, 60s, 512));
    std::atomic<int> checks{0};
    p.SetTransform(MaskSecrets, [&checks](const Attributes&) { return ++checks, true; });
    p.OnEnd(SpanSharing("a", block));
    ASSERT_TRUE(p.ForceFlush(5s));
    ASSERT_EQ(exporter->Spans().size(), 1u);
    EXPECT_TRUE(merged(exporter->Spans()[0]));
    EXPECT_EQ(checks.load(), 0);
  }
  {  // a transform without a check: nothing is known of the block
    auto exporter = std::make_shared<ApartExporter>();
    BatchSpanProcessor p(exporter, Options(100, 60s, 512), MaskSecrets);
    p.OnEnd(SpanSharing("a", block));
    ASSERT_TRUE(p.ForceFlush(5s));
    ASSERT_EQ(exporter->Spans().size(), 1u);
    EXPECT_TRUE(merged(exporter->Spans()[0]));
  }
  {  // no transform at all: the block stays apart
    auto exporter = std::make_shared<ApartExporter>();
    BatchSpanProcessor p(exporter, Options(100, 60s, 512));
    p.OnEnd(SpanSharing("a", block));
    ASSERT_TRUE(p.ForceFlush(5s));
    ASSERT_EQ(exporter->Spans().size(), 1u);
    EXPECT_EQ(exporter->Spans()[0].shared_attributes, block);
    EXPECT_EQ(StringAt(exporter->Spans()[0].attributes, 0), "secret");
  }
}

TEST(BatchSpanProcessorTest, FailedExportsAreCounted) {
  auto exporter = std::make_shared<FakeExporter>();
  exporter->SetResult(ExportResult::kFailure);
  BatchSpanProcessor p(exporter, Options(100, 60s, 2));
  for (int i = 0; i < 5; ++i) p.OnEnd(MakeSpan("s" + std::to_string(i)));
  ASSERT_TRUE(p.ForceFlush(5s));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.spans_failed, 5u);
  EXPECT_EQ(st.batches_failed, 3u);
  EXPECT_EQ(st.spans_exported, 0u);
  EXPECT_EQ(st.batches_exported, 0u);
}

TEST(BatchSpanProcessorTest, SpansThatAreNotSampledAreNotExported) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 512));
  p.OnEnd(MakeSpan("record-only", /*sampled=*/false));
  p.OnEnd(MakeSpan("sampled"));
  p.OnEnd(nullptr);
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), (Strings{"sampled"}));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.spans_queued, 1u);
  EXPECT_EQ(st.spans_dropped, 0u);
}

TEST(BatchSpanProcessorTest, BatchSizeIsClampedToTheQueueSize) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor big(exporter, Options(3, 60s, 10));
  EXPECT_EQ(big.options().max_export_batch_size, 3u);
  BatchSpanProcessor zero(exporter, Options(3, 60s, 0));
  EXPECT_EQ(zero.options().max_export_batch_size, 1u);
}

TEST(BatchSpanProcessorTest, ManyThreadsEndingSpansLoseNothingUncounted) {
  auto exporter = std::make_shared<InMemoryExporter>();
  BatchSpanProcessor p(exporter, Options(512, 1ms, 64));
  constexpr int kThreads = 8, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&p] {
      for (int i = 0; i < kPerThread; ++i) p.OnEnd(MakeSpan("s"));
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(p.ForceFlush(10s));
  BatchStats st = p.Stats();
  EXPECT_EQ(st.spans_queued + st.spans_dropped, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(st.spans_exported, st.spans_queued);
  EXPECT_EQ(exporter->Snapshot().size(), st.spans_exported);
}

bool WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

std::string ReadToEnd(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

std::string Join(const Strings& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

TEST(BatchSpanProcessorForkTest, ChildGetsAWorkingProcessorWithoutTheParentsSpans) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 50));
  // Let the parent's worker get fully started first. A fork while a thread is being created
  // is fine with glibc, but can leave AddressSanitizer's allocator locked in the child (a
  // limitation of the sanitizer runtime, seen as a hang of the child's first allocation).
  p.OnEnd(MakeSpan("warm-up"));
  ASSERT_TRUE(p.ForceFlush(5s));
  exporter->Clear();
  for (int i = 0; i < 3; ++i) p.OnEnd(MakeSpan("parent-" + std::to_string(i)));
  ASSERT_EQ(p.Stats().queue_length, 3u);  // queued in the parent, with its worker waiting
  ASSERT_EQ(exporter->SpanCount(), 0u);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    alarm(20);  // a deadlock in the child fails the test instead of hanging it
    std::string report;
    BatchStats st = p.Stats();
    report +=
        "queue=" + std::to_string(st.queue_length) + ";queued=" + std::to_string(st.spans_queued);
    p.OnEnd(MakeSpan("child-1"));
    p.OnEnd(MakeSpan("child-2"));
    const bool flushed = p.ForceFlush(5s);
    report += ";flushed=" + std::to_string(flushed) + ";names=" + Join(exporter->Names()) +
              ";after_fork=" + std::to_string(exporter->after_fork_calls()) +
              ";exported=" + std::to_string(p.Stats().spans_exported);
    const bool shut = p.Shutdown(5s);
    report += ";shutdown=" + std::to_string(shut) +
              ";exporter_shutdown=" + std::to_string(exporter->shutdown_calls());
    _exit(WriteAll(fds[1], report) ? 0 : 1);
  }
  close(fds[1]);
  const std::string report = ReadToEnd(fds[0]);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(report,
            "queue=0;queued=0;flushed=1;names=child-1,child-2;after_fork=1;exported=2;"
            "shutdown=1;exporter_shutdown=1");

  // The parent still has its own spans and its own worker.
  EXPECT_EQ(p.Stats().queue_length, 3u);
  ASSERT_TRUE(p.ForceFlush(5s));
  EXPECT_EQ(exporter->Names(), (Strings{"parent-0", "parent-1", "parent-2"}));
  EXPECT_EQ(exporter->after_fork_calls(), 0);
  EXPECT_EQ(exporter->shutdown_calls(), 0);
}

TEST(BatchSpanProcessorForkTest, ForkBeforeAnySpanLeavesBothSidesWorking) {
  auto exporter = std::make_shared<FakeExporter>();
  BatchSpanProcessor p(exporter, Options(100, 60s, 50));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);
    p.OnEnd(MakeSpan("child"));
    const bool ok = p.ForceFlush(5s) && exporter->Names() == Strings{"child"};
    _exit(ok ? 0 : 1);
  }
  p.OnEnd(MakeSpan("parent"));
  ASSERT_TRUE(p.ForceFlush(5s));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(exporter->Names(), (Strings{"parent"}));
}

// ----- SimpleSpanProcessor

TEST(SimpleSpanProcessorTest, ExportsSynchronouslyOnTheEndingThread) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter);
  p.OnEnd(MakeSpan("a"));
  EXPECT_EQ(exporter->Names(), (Strings{"a"}));  // already there when OnEnd returns
  EXPECT_EQ(exporter->Threads()[0], std::this_thread::get_id());
  p.OnEnd(MakeSpan("b"));
  EXPECT_EQ(exporter->BatchSizes(), (std::vector<size_t>{1, 1}));
}

TEST(SimpleSpanProcessorTest, SkipsSpansThatAreNotSampled) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter);
  p.OnEnd(MakeSpan("record-only", /*sampled=*/false));
  p.OnEnd(nullptr);
  EXPECT_EQ(exporter->SpanCount(), 0u);
}

TEST(SimpleSpanProcessorTest, AppliesTheTransform) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter, [](SpanData& s) { s.name = "x-" + s.name; });
  p.OnEnd(MakeSpan("a"));
  EXPECT_EQ(exporter->Names(), (Strings{"x-a"}));
}

TEST(SimpleSpanProcessorTest, SetTransformReplacesTheTransform) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter, [](SpanData& s) { s.name = "x-" + s.name; });
  p.OnEnd(MakeSpan("a"));
  p.SetTransform([](SpanData& s) { s.name = "y-" + s.name; });
  p.OnEnd(MakeSpan("b"));
  p.SetTransform({});
  p.OnEnd(MakeSpan("c"));
  EXPECT_EQ(exporter->Names(), (Strings{"x-a", "y-b", "c"}));
}

TEST(SimpleSpanProcessorTest, ForceFlushAsksTheExporter) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter);
  EXPECT_TRUE(p.ForceFlush(1s));
  exporter->SetForceFlushResult(false);
  EXPECT_FALSE(p.ForceFlush(1s));
  EXPECT_EQ(exporter->force_flush_calls(), 2);
}

TEST(SimpleSpanProcessorTest, SetExitingAndShutdownReachTheExporter) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter);
  p.SetExiting(true);
  EXPECT_TRUE(exporter->exiting());
  p.SetExiting(false);
  EXPECT_FALSE(exporter->exiting());
  EXPECT_TRUE(p.Shutdown(1s));
  EXPECT_TRUE(exporter->exiting());
}

TEST(SimpleSpanProcessorTest, ShutdownStopsExporting) {
  auto exporter = std::make_shared<FakeExporter>();
  SimpleSpanProcessor p(exporter);
  p.OnEnd(MakeSpan("a"));
  EXPECT_TRUE(p.Shutdown(1s));
  EXPECT_EQ(exporter->shutdown_calls(), 1);
  p.OnEnd(MakeSpan("late"));
  EXPECT_EQ(exporter->Names(), (Strings{"a"}));
  EXPECT_TRUE(p.Shutdown(1s));
  EXPECT_EQ(exporter->shutdown_calls(), 1);
}

// ----- MultiSpanProcessor

// Remembers what reached it; answers flushes and shutdowns with a chosen result.
class FakeProcessor final : public SpanProcessor {
 public:
  void OnEnd(SpanPtr span) noexcept override { spans.push_back(std::move(span)); }
  bool ForceFlush(std::chrono::milliseconds timeout) noexcept override {
    flush_timeouts.push_back(timeout);
    return flush_result;
  }
  bool Shutdown(std::chrono::milliseconds timeout) noexcept override {
    shutdown_timeouts.push_back(timeout);
    return shutdown_result;
  }
  void SetExiting(bool on) noexcept override { exiting.push_back(on); }
  std::vector<SpanPtr> spans;
  std::vector<bool> exiting;
  std::vector<std::chrono::milliseconds> flush_timeouts, shutdown_timeouts;
  bool flush_result = true, shutdown_result = true;
};

TEST(MultiSpanProcessorTest, EachProcessorGetsItsOwnCopy) {
  auto a = std::make_shared<FakeProcessor>();
  auto b = std::make_shared<FakeProcessor>();
  auto c = std::make_shared<FakeProcessor>();
  MultiSpanProcessor multi({a, b});
  multi.Add(c);
  EXPECT_FALSE(multi.empty());
  SpanPtr span = MakeSpan("s");
  span->attributes.push_back(Attribute{"k", std::string("v")});
  const SpanData* original = span.get();
  multi.OnEnd(std::move(span));
  ASSERT_EQ(a->spans.size(), 1u);
  ASSERT_EQ(b->spans.size(), 1u);
  ASSERT_EQ(c->spans.size(), 1u);
  // The last processor takes the original, the others copies.
  EXPECT_EQ(c->spans[0].get(), original);
  EXPECT_NE(a->spans[0].get(), original);
  EXPECT_NE(a->spans[0].get(), b->spans[0].get());
  for (auto* p : {a.get(), b.get(), c.get()}) {
    EXPECT_EQ(p->spans[0]->name, "s");
    ASSERT_EQ(p->spans[0]->attributes.size(), 1u);
    EXPECT_EQ(std::get<std::string>(p->spans[0]->attributes[0].value), "v");
  }
}

TEST(MultiSpanProcessorTest, ATransformInOneProcessorDoesNotReachTheOthers) {
  auto redacted = std::make_shared<FakeExporter>();
  auto plain = std::make_shared<FakeExporter>();
  MultiSpanProcessor multi;
  multi.Add(
      std::make_shared<SimpleSpanProcessor>(redacted, [](SpanData& s) { s.name = "[redacted]"; }));
  multi.Add(std::make_shared<SimpleSpanProcessor>(plain));
  multi.OnEnd(MakeSpan("secret"));
  EXPECT_EQ(redacted->Names(), (Strings{"[redacted]"}));
  EXPECT_EQ(plain->Names(), (Strings{"secret"}));
}

TEST(MultiSpanProcessorTest, FlushAndShutdownReachEveryProcessor) {
  auto a = std::make_shared<FakeProcessor>();
  auto b = std::make_shared<FakeProcessor>();
  MultiSpanProcessor multi({a, b});
  EXPECT_TRUE(multi.ForceFlush(1000ms));
  a->flush_result = false;
  EXPECT_FALSE(multi.ForceFlush(1000ms));
  EXPECT_EQ(b->flush_timeouts.size(), 2u);  // asked even after a failed one
  EXPECT_LE(b->flush_timeouts[0], 1000ms);
  EXPECT_GE(b->flush_timeouts[0], 900ms);
  b->shutdown_result = false;
  EXPECT_FALSE(multi.Shutdown(1000ms));
  EXPECT_EQ(a->shutdown_timeouts.size(), 1u);
  EXPECT_EQ(b->shutdown_timeouts.size(), 1u);
}

TEST(MultiSpanProcessorTest, SetExitingReachesEveryProcessor) {
  auto a = std::make_shared<FakeProcessor>();
  auto b = std::make_shared<FakeProcessor>();
  MultiSpanProcessor multi({a, b});
  multi.SetExiting(true);
  multi.SetExiting(false);
  EXPECT_EQ(a->exiting, (std::vector<bool>{true, false}));
  EXPECT_EQ(b->exiting, (std::vector<bool>{true, false}));
}

TEST(MultiSpanProcessorTest, EmptyIsANoOp) {
  MultiSpanProcessor multi;
  EXPECT_TRUE(multi.empty());
  multi.OnEnd(MakeSpan("s"));
  EXPECT_TRUE(multi.ForceFlush(1s));
  EXPECT_TRUE(multi.Shutdown(1s));
}

TEST(MultiSpanProcessorTest, NullSpanReachesNobody) {
  auto a = std::make_shared<FakeProcessor>();
  MultiSpanProcessor multi({a});
  multi.OnEnd(nullptr);
  EXPECT_TRUE(a->spans.empty());
}

}  // namespace
}  // namespace djtrace
