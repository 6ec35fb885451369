#include "trace/ids.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <thread>
#include <unordered_set>
#include <vector>

#include "trace/clock.h"

namespace djtrace {
namespace {

uint64_t Load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

uint64_t AsInt(const SpanId& id) { return Load64(id.data()); }

struct TraceIdHash {
  size_t operator()(const TraceId& id) const {
    return std::hash<uint64_t>()(Load64(id.data()) * 31 + Load64(id.data() + 8));
  }
};

TEST(IdsTest, TraceAndSpanIdsAreNeverZero) {
  for (int i = 0; i < 100000; ++i) {
    ASSERT_FALSE(IsZero(NewTraceId()));
    ASSERT_FALSE(IsZero(NewSpanId()));
  }
}

TEST(IdsTest, NoDuplicatesInAMillionDraws) {
  constexpr int kDraws = 1000000;
  std::unordered_set<uint64_t> spans;
  spans.reserve(kDraws);
  for (int i = 0; i < kDraws; ++i) ASSERT_TRUE(spans.insert(AsInt(NewSpanId())).second) << i;
  std::unordered_set<TraceId, TraceIdHash> traces;
  traces.reserve(kDraws);
  for (int i = 0; i < kDraws; ++i) ASSERT_TRUE(traces.insert(NewTraceId()).second) << i;
}

// A broken generator (stuck bits, a short period, only low bytes filled) shows up here long
// before it produces a duplicate.
TEST(IdsTest, EveryBitIsSetAboutHalfTheTime) {
  constexpr int kDraws = 200000;
  std::array<int, 128> trace_bits{};
  std::array<int, 64> span_bits{};
  for (int i = 0; i < kDraws; ++i) {
    TraceId t = NewTraceId();
    for (int b = 0; b < 128; ++b) trace_bits[b] += (t[b / 8] >> (b % 8)) & 1;
    SpanId s = NewSpanId();
    for (int b = 0; b < 64; ++b) span_bits[b] += (s[b / 8] >> (b % 8)) & 1;
  }
  // 5 standard deviations of a fair coin over kDraws draws is about 0.56%.
  for (int b = 0; b < 128; ++b) {
    EXPECT_GT(trace_bits[b], kDraws * 0.48) << "trace id bit " << b;
    EXPECT_LT(trace_bits[b], kDraws * 0.52) << "trace id bit " << b;
  }
  for (int b = 0; b < 64; ++b) {
    EXPECT_GT(span_bits[b], kDraws * 0.48) << "span id bit " << b;
    EXPECT_LT(span_bits[b], kDraws * 0.52) << "span id bit " << b;
  }
}

TEST(IdsTest, TraceIdLow64ReadsTheLastEightBytesBigEndian) {
  TraceId id{};
  for (int i = 0; i < 16; ++i) id[i] = static_cast<uint8_t>(0xA0 + i);
  EXPECT_EQ(TraceIdLow64(id), 0xA8A9AAABACADAEAFull);
  id.fill(0xFF);
  EXPECT_EQ(TraceIdLow64(id), ~0ull);
  id.fill(0);
  id[15] = 1;
  EXPECT_EQ(TraceIdLow64(id), 1u);
}

TEST(IdsTest, ThreadsDrawDifferentStreams) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50000;
  std::vector<std::vector<uint64_t>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&drawn, t] {
      drawn[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) drawn[t].push_back(AsInt(NewSpanId()));
    });
  }
  for (auto& th : threads) th.join();
  std::unordered_set<uint64_t> all;
  for (int t = 0; t < kThreads; ++t)
    for (uint64_t v : drawn[t]) ASSERT_TRUE(all.insert(v).second) << "thread " << t;
  // Not merely shifted copies of one stream: the first ids of all threads differ.
  for (int a = 0; a < kThreads; ++a)
    for (int b = a + 1; b < kThreads; ++b) EXPECT_NE(drawn[a][0], drawn[b][0]);
}

bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Without a reseed in the child, parent and child would continue the same generator state and
// draw identical ids after fork().
TEST(IdsTest, ChildAfterForkDrawsIdsTheParentDoesNot) {
  constexpr int kIds = 1000;
  // Make sure this thread's generator is seeded before the fork.
  for (int i = 0; i < 10; ++i) (void)NewSpanId();
  const uint64_t generation_before = ForkGeneration();

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    uint64_t generation = ForkGeneration();
    std::vector<SpanId> spans(kIds);
    std::vector<TraceId> traces(kIds);
    for (auto& s : spans) s = NewSpanId();
    for (auto& t : traces) t = NewTraceId();
    bool ok = WriteAll(fds[1], &generation, sizeof(generation)) &&
              WriteAll(fds[1], spans.data(), spans.size() * sizeof(SpanId)) &&
              WriteAll(fds[1], traces.data(), traces.size() * sizeof(TraceId));
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  std::vector<SpanId> parent_spans(kIds);
  std::vector<TraceId> parent_traces(kIds);
  for (auto& s : parent_spans) s = NewSpanId();
  for (auto& t : parent_traces) t = NewTraceId();

  uint64_t child_generation = 0;
  std::vector<SpanId> child_spans(kIds);
  std::vector<TraceId> child_traces(kIds);
  bool read_ok = ReadAll(fds[0], &child_generation, sizeof(child_generation)) &&
                 ReadAll(fds[0], child_spans.data(), child_spans.size() * sizeof(SpanId)) &&
                 ReadAll(fds[0], child_traces.data(), child_traces.size() * sizeof(TraceId));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_TRUE(read_ok);

  EXPECT_EQ(child_generation, generation_before + 1);
  EXPECT_EQ(ForkGeneration(), generation_before);  // only the child counts the fork

  std::unordered_set<uint64_t> parent_span_set;
  for (const auto& s : parent_spans) parent_span_set.insert(AsInt(s));
  for (const auto& s : child_spans) {
    EXPECT_FALSE(IsZero(s));
    EXPECT_EQ(parent_span_set.count(AsInt(s)), 0u);
  }
  std::unordered_set<TraceId, TraceIdHash> parent_trace_set(parent_traces.begin(),
                                                            parent_traces.end());
  for (const auto& t : child_traces) {
    EXPECT_FALSE(IsZero(t));
    EXPECT_EQ(parent_trace_set.count(t), 0u);
  }
}

TEST(ClockTest, NowUnixNanoIsWallClockInNanoseconds) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t before =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  const uint64_t now = NowUnixNano();
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t after =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  // After 2020-01-01 and in nanoseconds, not micro- or milliseconds.
  EXPECT_GT(now, 1577836800ull * 1000000000ull);
}

}  // namespace
}  // namespace djtrace
