#include "trace/span_pool.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace djtrace {
namespace {

// Empties the shared list and this thread's cache, so that a test sees only its own spans.
void Drain() {
  SpanPool& pool = SpanPool::Global();
  while (pool.SharedSize() > 0) pool.Take();
  for (size_t i = 0; i < SpanPool::kRefill; ++i) pool.Take();
}

SpanPtr FullSpan() {
  auto s = std::make_unique<SpanData>();
  s->trace_id.fill(1);
  s->span_id.fill(2);
  s->parent_span_id.fill(3);
  s->trace_state = "vendor=value";
  s->flags = 0x301;
  s->name = "GET api/orders/<int:pk>/ with a name longer than the small-string buffer";
  s->kind = SpanKind::kServer;
  s->start_time_unix_nano = 10;
  s->end_time_unix_nano = 20;
  s->attributes.push_back({"http.request.method", std::string("GET")});
  s->attributes.push_back({"db.query.text", std::string(200, 'x')});
  s->dropped_attributes_count = 4;
  s->events.push_back(Event{"exception", 15, {{"exception.type", std::string("E")}}, 1});
  s->dropped_events_count = 5;
  s->dropped_links_count = 6;
  s->status_code = StatusCode::kError;
  s->status_message = "boom";
  s->scope = std::make_shared<InstrumentationScope>(InstrumentationScope{"s", "1", "", {}});
  s->resource = std::make_shared<Resource>();
  return s;
}

void ExpectDefault(const SpanData& s) {
  const SpanData d;
  EXPECT_EQ(s.trace_id, d.trace_id);
  EXPECT_EQ(s.span_id, d.span_id);
  EXPECT_EQ(s.parent_span_id, d.parent_span_id);
  EXPECT_EQ(s.trace_state, d.trace_state);
  EXPECT_EQ(s.flags, d.flags);
  EXPECT_EQ(s.name, d.name);
  EXPECT_EQ(s.kind, d.kind);
  EXPECT_EQ(s.start_time_unix_nano, d.start_time_unix_nano);
  EXPECT_EQ(s.end_time_unix_nano, d.end_time_unix_nano);
  EXPECT_TRUE(s.attributes.empty());
  EXPECT_EQ(s.dropped_attributes_count, d.dropped_attributes_count);
  EXPECT_TRUE(s.events.empty());
  EXPECT_EQ(s.dropped_events_count, d.dropped_events_count);
  EXPECT_TRUE(s.links.empty());
  EXPECT_EQ(s.dropped_links_count, d.dropped_links_count);
  EXPECT_EQ(s.status_code, d.status_code);
  EXPECT_EQ(s.status_message, d.status_message);
  EXPECT_EQ(s.scope, nullptr);
  EXPECT_EQ(s.resource, nullptr);
}

TEST(SpanPoolTest, ClearForReuseResetsEveryField) {
  SpanPtr s = FullSpan();
  ClearForReuse(*s);
  ExpectDefault(*s);
  EXPECT_GE(s->name.capacity(), 60u);  // the memory is kept for the next span
}

TEST(SpanPoolTest, ReturnedSpansComeBackCleared) {
  Drain();
  std::vector<SpanPtr> spans;
  std::set<const SpanData*> addresses;
  for (int i = 0; i < 3; ++i) {
    spans.push_back(FullSpan());
    addresses.insert(spans.back().get());
  }
  SpanPool::Global().Return(spans);
  EXPECT_TRUE(spans.empty());
  EXPECT_EQ(SpanPool::Global().SharedSize(), 3u);
  std::vector<SpanPtr> taken;  // kept alive, so that no later allocation reuses an address
  for (int i = 0; i < 3; ++i) {
    taken.push_back(SpanPool::Global().Take());
    EXPECT_EQ(addresses.count(taken.back().get()), 1u);
    ExpectDefault(*taken.back());
  }
  EXPECT_EQ(SpanPool::Global().SharedSize(), 0u);
  SpanPtr fresh = SpanPool::Global().Take();  // none left: a new one
  EXPECT_EQ(addresses.count(fresh.get()), 0u);
  ExpectDefault(*fresh);
}

// More spans than one refill, returned by another thread, each with heap-held strings and
// attributes of every kind: Take reads ahead into the spans it hands out next (their buffers
// and the blocks their attributes own), and every one must still come back cleared, across
// the refills.
TEST(SpanPoolTest, ManySpansComeBackClearedAcrossRefills) {
  Drain();
  const size_t n = SpanPool::kRefill * 2 + 5;
  std::vector<SpanPtr> spans;
  std::set<const SpanData*> addresses;
  for (size_t i = 0; i < n; ++i) {
    SpanPtr s = FullSpan();
    for (size_t a = 0; a < i % 24; ++a) {
      const std::string key = "djtrace.test.attribute.with.a.long.key." + std::to_string(a);
      switch (a % 4) {
        case 0:
          s->attributes.push_back({key, std::string(40 + a, 'v')});
          break;
        case 1:
          s->attributes.push_back({key, static_cast<int64_t>(a)});
          break;
        case 2:
          s->attributes.push_back({key, std::vector<std::string>{"x", std::string(64, 'y')}});
          break;
        default:
          s->attributes.push_back({"k", true});
          break;
      }
    }
    if (i % 3 == 0) s->attributes.clear();  // kept capacity, no elements
    addresses.insert(s.get());
    spans.push_back(std::move(s));
  }
  std::thread worker([&] { SpanPool::Global().Return(spans); });
  worker.join();
  EXPECT_EQ(SpanPool::Global().SharedSize(), n);
  std::vector<SpanPtr> taken;  // kept alive, so that no later allocation reuses an address
  for (size_t i = 0; i < n; ++i) {
    taken.push_back(SpanPool::Global().Take());
    EXPECT_EQ(addresses.erase(taken.back().get()), 1u) << "span " << i;
    ExpectDefault(*taken.back());
  }
  EXPECT_TRUE(addresses.empty());
  EXPECT_EQ(SpanPool::Global().SharedSize(), 0u);
}

TEST(SpanPoolTest, SpansReturnedOnAnotherThreadAreReusedHere) {
  Drain();
  std::vector<SpanPtr> spans;
  spans.push_back(FullSpan());
  const SpanData* address = spans.back().get();
  std::thread worker([&] { SpanPool::Global().Return(spans); });
  worker.join();
  SpanPtr s = SpanPool::Global().Take();
  EXPECT_EQ(s.get(), address);
  ExpectDefault(*s);
}

TEST(SpanPoolTest, KeepsAtMostItsCapacityAndNoOversizedSpans) {
  Drain();
  std::vector<SpanPtr> spans;
  for (size_t i = 0; i < SpanPool::kCapacity + 10; ++i)
    spans.push_back(std::make_unique<SpanData>());
  SpanPool::Global().Return(spans);
  EXPECT_TRUE(spans.empty());
  EXPECT_EQ(SpanPool::Global().SharedSize(), SpanPool::kCapacity);
  Drain();

  auto big = std::make_unique<SpanData>();
  big->attributes.resize(1000);
  auto linked = std::make_unique<SpanData>();
  linked->links.emplace_back();
  auto small = std::make_unique<SpanData>();
  spans.push_back(std::move(big));
  spans.push_back(std::move(linked));
  spans.push_back(std::move(small));
  SpanPool::Global().Return(spans);
  EXPECT_EQ(SpanPool::Global().SharedSize(), 1u);
  Drain();
}

TEST(SpanPoolTest, NullEntriesAreSkipped) {
  Drain();
  std::vector<SpanPtr> spans(3);
  SpanPool::Global().Return(spans);
  EXPECT_EQ(SpanPool::Global().SharedSize(), 0u);
}

}  // namespace
}  // namespace djtrace
