#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sql/cache.h"

// Counts this thread's heap allocations, to prove that a cache hit makes none.
namespace {
thread_local size_t allocations = 0;
}  // namespace

void* operator new(size_t size) {
  ++allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace djtrace::sql {
namespace {

SqlCacheOptions WithCapacity(size_t capacity) {
  SqlCacheOptions o;
  o.capacity = capacity;
  return o;
}

TEST(SqlCacheTest, MissThenHitSharesTheResult) {
  SqlCache cache;
  const auto a = cache.Get("SELECT * FROM t WHERE id = 1", Dialect::kPostgres);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->text, "SELECT * FROM t WHERE id = ?");
  EXPECT_EQ(a->summary, "SELECT t");
  const auto b = cache.Get("SELECT * FROM t WHERE id = 1", Dialect::kPostgres);
  EXPECT_EQ(a.get(), b.get());
  const SqlCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.size, 1u);
  EXPECT_EQ(s.evictions, 0u);
}

TEST(SqlCacheTest, KeyIsExactBytesAndDialect) {
  SqlCache cache;
  const auto pg = cache.Get("SELECT \"a\"", Dialect::kPostgres);
  const auto my = cache.Get("SELECT \"a\"", Dialect::kMysql);
  EXPECT_NE(pg.get(), my.get());
  EXPECT_EQ(pg->text, "SELECT \"a\"");
  EXPECT_EQ(my->text, "SELECT ?");
  const auto spaced = cache.Get("SELECT  \"a\"", Dialect::kPostgres);
  EXPECT_NE(pg.get(), spaced.get());
  EXPECT_EQ(pg->fingerprint, spaced->fingerprint);
  EXPECT_EQ(cache.stats().misses, 3u);
  // Embedded NUL bytes are part of the key.
  const auto n1 = cache.Get(std::string_view("a\0b", 3), Dialect::kPostgres);
  const auto n2 = cache.Get(std::string_view("a\0c", 3), Dialect::kPostgres);
  EXPECT_NE(n1.get(), n2.get());
}

TEST(SqlCacheTest, HitDoesNotAllocate) {
  SqlCache cache;
  const std::string sql =
      "SELECT \"shop_order\".\"id\" FROM \"shop_order\" WHERE \"shop_order\".\"id\" = %s LIMIT 21";
  size_t before = allocations;
  cache.Get(sql, Dialect::kPostgres);
  EXPECT_GT(allocations, before) << "the counter does not see allocations";
  before = allocations;
  for (int i = 0; i < 100; ++i) {
    const auto r = cache.Get(sql, Dialect::kPostgres);
    ASSERT_NE(r, nullptr);
  }
  EXPECT_EQ(allocations, before);
  EXPECT_EQ(cache.stats().hits, 100u);
}

TEST(SqlCacheTest, BoundedWithClockEviction) {
  SqlCache cache(WithCapacity(64));
  EXPECT_EQ(cache.capacity(), 64u);
  for (int i = 0; i < 1000; ++i) cache.Get("SELECT c" + std::to_string(i), Dialect::kSqlite);
  SqlCache::Stats s = cache.stats();
  EXPECT_EQ(s.size, 64u);
  EXPECT_EQ(s.misses, 1000u);
  EXPECT_EQ(s.evictions, 1000u - 64u);
  // Results handed out survive their eviction.
  auto held = cache.Get("SELECT held", Dialect::kSqlite);
  for (int i = 0; i < 1000; ++i) cache.Get("SELECT d" + std::to_string(i), Dialect::kSqlite);
  EXPECT_EQ(held->text, "SELECT held");
}

TEST(SqlCacheTest, FrequentlyUsedEntriesSurviveAScan) {
  SqlCache cache(WithCapacity(8));  // one shard: CLOCK order is observable
  const std::string hot = "SELECT hot";
  cache.Get(hot, Dialect::kGeneric);
  for (int i = 0; i < 200; ++i) {
    cache.Get(hot, Dialect::kGeneric);  // referenced again between insertions
    cache.Get("SELECT cold" + std::to_string(i), Dialect::kGeneric);
  }
  const uint64_t misses = cache.stats().misses;
  cache.Get(hot, Dialect::kGeneric);
  EXPECT_EQ(cache.stats().misses, misses) << "the hot entry was evicted";
}

TEST(SqlCacheTest, CapacityZeroAndLongTextsBypass) {
  SqlCache off(WithCapacity(0));
  const auto a = off.Get("SELECT 1", Dialect::kPostgres);
  const auto b = off.Get("SELECT 1", Dialect::kPostgres);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->text, "SELECT ?");
  EXPECT_EQ(off.stats().uncached, 2u);
  EXPECT_EQ(off.stats().size, 0u);

  SqlCacheOptions o;
  o.max_sql_length = 10;
  SqlCache small(o);
  small.Get("SELECT 123456789", Dialect::kPostgres);
  small.Get("SELECT 1", Dialect::kPostgres);
  EXPECT_EQ(small.stats().uncached, 1u);
  EXPECT_EQ(small.stats().size, 1u);
}

TEST(SqlCacheTest, UsesTheConfiguredObfuscateOptions) {
  SqlCacheOptions o;
  o.obfuscate.max_length = 12;
  SqlCache cache(o);
  const auto r = cache.Get("SELECT alpha, beta FROM t", Dialect::kPostgres);
  EXPECT_TRUE(r->truncated);
  EXPECT_LE(r->text.size(), 12u);
}

TEST(SqlCacheTest, ClearEmptiesButKeepsWorking) {
  SqlCache cache(WithCapacity(8));
  for (int i = 0; i < 20; ++i) cache.Get("SELECT " + std::to_string(i), Dialect::kMysql);
  cache.Clear();
  EXPECT_EQ(cache.stats().size, 0u);
  for (int i = 0; i < 20; ++i) cache.Get("SELECT x" + std::to_string(i), Dialect::kMysql);
  EXPECT_EQ(cache.stats().size, 8u);
  EXPECT_EQ(cache.Get("SELECT x19", Dialect::kMysql)->text, "SELECT x19");
}

TEST(SqlCacheTest, ConcurrentUseIsConsistent) {
  SqlCache cache(WithCapacity(256));
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        // A hot set that fits and a cold tail that forces evictions.
        const int k = (i % 10 == 0) ? 1000 + (i * kThreads + t) % 5000 : i % 100;
        const std::string sql = "SELECT c FROM t" + std::to_string(k) + " WHERE x = 7";
        const auto r = cache.Get(sql, Dialect::kPostgres);
        if (r->text != "SELECT c FROM t" + std::to_string(k) + " WHERE x = ?") ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  const SqlCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<uint64_t>(kThreads) * kIters);
  EXPECT_LE(s.size, 256u);
  EXPECT_GT(s.hits, s.misses);
}

// Figures for the report; run with --gtest_also_run_disabled_tests.
TEST(SqlCachePerf, DISABLED_HitCost) {
  SqlCache cache;
  std::vector<std::string> texts;
  for (int i = 0; i < 500; ++i)
    texts.push_back(
        "SELECT \"app_model\".\"id\", \"app_model\".\"name\" FROM \"app_model\" WHERE "
        "\"app_model\".\"owner_id\" = %s AND \"app_model\".\"kind\" = %s LIMIT " +
        std::to_string(i));
  for (const auto& t : texts) cache.Get(t, Dialect::kPostgres);
  for (int threads : {1, 2, 4}) {
    constexpr int kIters = 400000;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int i = 0; i < kIters; ++i)
          cache.Get(texts[(i * 7 + t) % texts.size()], Dialect::kPostgres);
      });
    for (auto& th : pool) th.join();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
        (static_cast<double>(kIters) * threads);
    std::printf("%d thread(s): %.0f ns per hit (wall time / total lookups), %zu-byte texts\n",
                threads, ns, texts[0].size());
  }
}

}  // namespace
}  // namespace djtrace::sql
