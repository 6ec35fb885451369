#include "analysis/query_stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "attributes_util.h"
#include "sql/obfuscator.h"

namespace djtrace::analysis {
namespace {

using SqlPtr = std::shared_ptr<const sql::ObfuscatedSql>;

SqlPtr Sql(std::string_view text, sql::Dialect d = sql::Dialect::kPostgres) {
  return std::make_shared<const sql::ObfuscatedSql>(sql::Obfuscate(text, d));
}

using testing::Find;
using testing::IntAttr;
using testing::StrAttr;

// Records one execution of `sql` from `site` taking `ms` milliseconds.
struct Recorder {
  QueryStats& stats;
  bool Run(const SqlPtr& sql, const CallSite& site, double ms = 1.0, std::string_view relation = {},
           std::string_view params = {}, bool with_key = true, QueryGroup* crossed = nullptr) {
    QueryRecord q;
    q.sql = &sql;
    q.site = &site;
    q.relation = relation;
    q.duration_ns = static_cast<uint64_t>(ms * 1e6);
    q.end_unix_nano = 1'700'000'000'000'000'000ull + (++clock);
    q.has_exact_key = with_key;
    q.exact_key = ExactKey(sql->fingerprint, raw_text, params);
    return stats.Record(q, crossed);
  }
  std::string raw_text = "SELECT 1";
  uint64_t clock = 0;
};

class QueryStatsTest : public ::testing::Test {
 protected:
  std::shared_ptr<const CodeLocation> view_ =
      MakeCodeLocation("/srv/app/shop/views.py", "order_list");
  CallSite loop_site_ = CallSite::Make(view_, 42);
  CallSite other_site_ = CallSite::Make(view_, 57);
  SqlPtr customer_by_pk_ =
      Sql("SELECT \"customers\".\"id\", \"customers\".\"name\" FROM \"customers\" WHERE "
          "\"customers\".\"id\" = %s LIMIT 21");
  SpanLimits limits_;
};

TEST_F(QueryStatsTest, GroupBecomesNPlusOneAtThresholdExactlyOnce) {
  QueryStats stats({}, limits_);
  Recorder r{stats};
  for (int i = 0; i < 4; ++i)
    EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_, 1.0, {}, std::to_string(i)));
  EXPECT_TRUE(stats.NPlusOneGroups().empty());
  QueryGroup crossed;
  EXPECT_TRUE(r.Run(customer_by_pk_, loop_site_, 1.0, {}, "4", true, &crossed));
  EXPECT_EQ(crossed.count, 5u);
  EXPECT_EQ(crossed.sql->summary, "SELECT customers");
  EXPECT_EQ(crossed.site.lineno, 42);
  EXPECT_EQ(crossed.site.code->function, "order_list");
  for (int i = 5; i < 9; ++i)
    EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_, 1.0, {}, std::to_string(i)));
  auto groups = stats.NPlusOneGroups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].count, 9u);
  EXPECT_EQ(stats.Summary().n_plus_one_groups, 1u);
  EXPECT_EQ(stats.Summary().query_count, 9u);
}

TEST_F(QueryStatsTest, OfFindsQueryStatsAmongRootStates) {
  class OtherState final : public LocalRootState {
   public:
    void OnRootEnd(SpanData&) noexcept override {}
  };
  QueryStats stats({}, limits_);
  OtherState other;
  LocalRootState* as_base = &stats;
  EXPECT_EQ(QueryStats::Of(as_base), &stats);
  EXPECT_EQ(QueryStats::Of(&other), nullptr);
  EXPECT_EQ(QueryStats::Of(nullptr), nullptr);
}

TEST_F(QueryStatsTest, GroupsByFingerprintAndCallSite) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 3;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  // Two executions at each of two call sites: no group reaches 3.
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_, 1.0, {}, std::to_string(i)));
    EXPECT_FALSE(r.Run(customer_by_pk_, other_site_, 1.0, {}, std::to_string(i)));
  }
  // The same statement with an inline literal fingerprints like the %s form, so it joins the
  // group of the loop's call site, which now reaches 3.
  SqlPtr inlined =
      Sql("SELECT \"customers\".\"id\", \"customers\".\"name\" FROM \"customers\" WHERE "
          "\"customers\".\"id\" = 7 LIMIT 21");
  ASSERT_EQ(inlined->fingerprint, customer_by_pk_->fingerprint);
  EXPECT_TRUE(r.Run(inlined, loop_site_));
  // A different statement at the same site is another group.
  SqlPtr items = Sql("SELECT \"order_items\".\"id\" FROM \"order_items\" WHERE \"order_id\" = %s");
  EXPECT_FALSE(r.Run(items, loop_site_));
  EXPECT_FALSE(r.Run(items, loop_site_));
  EXPECT_EQ(stats.NPlusOneGroups().size(), 1u);
}

TEST_F(QueryStatsTest, UnknownCallSiteStillGroups) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 2;
  QueryStats stats(o, limits_);
  SqlPtr sql = customer_by_pk_;
  QueryRecord q;
  q.sql = &sql;
  EXPECT_FALSE(stats.Record(q));
  QueryGroup g;
  EXPECT_TRUE(stats.Record(q, &g));
  EXPECT_FALSE(g.site.known());
}

TEST_F(QueryStatsTest, DurationThresholdMustAlsoBeReached) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 3;
  o.n_plus_one_min_duration_ns = 10'000'000;  // 10 ms
  QueryStats stats(o, limits_);
  Recorder r{stats};
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_, 1.5));  // 9 ms
  EXPECT_TRUE(r.Run(customer_by_pk_, loop_site_, 1.5));                               // 10.5 ms
  auto groups = stats.NPlusOneGroups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].count, 7u);
  EXPECT_EQ(groups[0].total_duration_ns, 10'500'000u);
}

TEST_F(QueryStatsTest, ThresholdZeroTurnsDetectionOff) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 0;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_));
  EXPECT_EQ(stats.Summary().query_count, 50u);
  EXPECT_EQ(stats.Summary().n_plus_one_groups, 0u);
}

TEST_F(QueryStatsTest, DuplicatesNeedSameTextAndSameParameters) {
  QueryStats stats({}, limits_);
  Recorder r{stats};
  r.Run(customer_by_pk_, loop_site_, 1.0, {}, "i:7");
  r.Run(customer_by_pk_, other_site_, 1.0, {}, "i:7");  // same execution elsewhere: duplicate
  r.Run(customer_by_pk_, loop_site_, 1.0, {}, "i:8");
  r.Run(customer_by_pk_, loop_site_, 1.0, {}, "i:7");  // duplicate again
  EXPECT_EQ(stats.Summary().duplicate_count, 2u);
  // Inline literals, no parameters: the texts differ, so no duplicate although the
  // fingerprints match.
  SqlPtr inlined = Sql("SELECT * FROM orders WHERE id = 1");
  r.raw_text = "SELECT * FROM orders WHERE id = 1";
  r.Run(inlined, loop_site_);
  r.raw_text = "SELECT * FROM orders WHERE id = 2";
  r.Run(inlined, loop_site_);
  EXPECT_EQ(stats.Summary().duplicate_count, 2u);
  r.Run(inlined, loop_site_);  // "... id = 2" again
  EXPECT_EQ(stats.Summary().duplicate_count, 3u);
  // Executions without a key (parameters that could not be serialised) never count.
  r.Run(inlined, loop_site_, 1.0, {}, {}, /*with_key=*/false);
  EXPECT_EQ(stats.Summary().duplicate_count, 3u);
}

TEST_F(QueryStatsTest, ExactKeyDependsOnEveryPart) {
  const uint64_t k = ExactKey(1, "SELECT 1", "a");
  EXPECT_EQ(k, ExactKey(1, "SELECT 1", "a"));
  EXPECT_NE(k, ExactKey(2, "SELECT 1", "a"));
  EXPECT_NE(k, ExactKey(1, "SELECT 2", "a"));
  EXPECT_NE(k, ExactKey(1, "SELECT 1", "b"));
  EXPECT_NE(k, ExactKey(1, "SELECT 1", ""));
}

TEST_F(QueryStatsTest, GroupsAreBounded) {
  QueryStatsOptions o;
  o.max_groups = 3;
  o.n_plus_one_threshold = 2;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  std::vector<SqlPtr> statements;
  for (int i = 0; i < 10; ++i)
    statements.push_back(Sql("SELECT * FROM t" + std::to_string(i) + " WHERE id = %s"));
  for (int round = 0; round < 2; ++round)
    for (auto& s : statements) r.Run(s, loop_site_);
  QueryStatsSummary s = stats.Summary();
  EXPECT_EQ(s.query_count, 20u);
  EXPECT_EQ(s.ungrouped, 14u);  // 7 statements beyond the cap, twice
  EXPECT_EQ(s.n_plus_one_groups, 3u);
}

TEST_F(QueryStatsTest, ManyGroupsGrowTheIndex) {
  QueryStatsOptions o;
  o.max_groups = 1000;
  o.n_plus_one_threshold = 3;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  std::vector<SqlPtr> statements;
  for (int i = 0; i < 500; ++i)
    statements.push_back(Sql("SELECT * FROM t" + std::to_string(i) + " WHERE id = %s"));
  for (int round = 0; round < 3; ++round)
    for (auto& s : statements) r.Run(s, loop_site_);
  EXPECT_EQ(stats.Summary().n_plus_one_groups, 500u);
  EXPECT_EQ(stats.Summary().ungrouped, 0u);
}

TEST_F(QueryStatsTest, ExactKeysAreBounded) {
  QueryStatsOptions o;
  o.max_exact_keys = 4;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  for (int i = 0; i < 10; ++i) r.Run(customer_by_pk_, loop_site_, 1.0, {}, std::to_string(i));
  EXPECT_EQ(stats.Summary().unchecked_for_duplicates, 6u);
  r.Run(customer_by_pk_, loop_site_, 1.0, {}, "2");  // remembered
  r.Run(customer_by_pk_, loop_site_, 1.0, {}, "9");  // not remembered: not counted
  EXPECT_EQ(stats.Summary().duplicate_count, 1u);
}

TEST_F(QueryStatsTest, RelationIsCarriedToTheGroupAndTheEvent) {
  QueryStats stats({}, limits_);
  Recorder r{stats};
  r.Run(customer_by_pk_, loop_site_, 1.0);  // not a lazy load (e.g. a first explicit get)
  for (int i = 0; i < 4; ++i) r.Run(customer_by_pk_, loop_site_, 1.0, "Order.customer");
  auto groups = stats.NPlusOneGroups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].relation, "Order.customer");

  SpanData root;
  root.end_time_unix_nano = 1'800'000'000'000'000'000ull;
  stats.OnRootEnd(root);
  ASSERT_EQ(root.events.size(), 1u);
  const Event& e = root.events[0];
  EXPECT_EQ(e.name, "djtrace.n_plus_one");
  EXPECT_EQ(StrAttr(e.attributes, "djtrace.orm.relation"), "Order.customer");
  EXPECT_EQ(StrAttr(e.attributes, "db.query.text"), customer_by_pk_->text);
  EXPECT_EQ(StrAttr(e.attributes, "db.query.summary"), "SELECT customers");
  EXPECT_EQ(StrAttr(e.attributes, "code.filepath"), "/srv/app/shop/views.py");
  EXPECT_EQ(StrAttr(e.attributes, "code.function"), "order_list");
  EXPECT_EQ(IntAttr(e.attributes, "code.lineno"), 42);
  EXPECT_EQ(IntAttr(e.attributes, "djtrace.n_plus_one.count"), 5);
  EXPECT_EQ(StrAttr(e.attributes, "djtrace.db.fingerprint"),
            FingerprintHex(customer_by_pk_->fingerprint));
  EXPECT_DOUBLE_EQ(std::get<double>(Find(e.attributes, "djtrace.n_plus_one.duration_ms")->value),
                   5.0);
  EXPECT_LT(e.time_unix_nano, root.end_time_unix_nano);  // when the group crossed
}

TEST_F(QueryStatsTest, RootAttributes) {
  QueryStats stats({}, limits_);
  Recorder r{stats};
  for (int i = 0; i < 6; ++i) r.Run(customer_by_pk_, loop_site_, 2.0, {}, std::to_string(i % 3));
  QueryRecord failed;
  failed.sql = &customer_by_pk_;
  failed.error = true;
  failed.duration_ns = 500'000;
  stats.Record(failed);
  SpanData root;
  root.attributes.push_back({"http.route", std::string("shop/orders/bad/")});
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.db.query_count"), 7);
  EXPECT_DOUBLE_EQ(std::get<double>(Find(root.attributes, "djtrace.db.duration_ms")->value), 12.5);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.n_plus_one.count"), 1);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.db.duplicate_count"), 3);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.db.error_count"), 1);
  EXPECT_EQ(StrAttr(root.attributes, "http.route"), "shop/orders/bad/");
  // A second end (it cannot happen through LiveSpan, but the state must not double up).
  stats.OnRootEnd(root);
  EXPECT_EQ(root.events.size(), 1u);
}

TEST_F(QueryStatsTest, NoQueriesStillSaysZero) {
  QueryStats stats({}, limits_);
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.db.query_count"), 0);
  EXPECT_EQ(Find(root.attributes, "djtrace.db.error_count"), nullptr);
  EXPECT_TRUE(root.events.empty());
}

TEST_F(QueryStatsTest, RootWritesRespectSpanLimits) {
  SpanLimits tight;
  tight.max_attributes = 3;
  tight.max_events = 2;
  tight.max_event_attributes = 4;
  tight.max_attribute_length = 10;
  QueryStatsOptions o;
  o.n_plus_one_threshold = 2;
  o.max_reported_groups = 3;
  QueryStats stats(o, tight);
  Recorder r{stats};
  for (int i = 0; i < 5; ++i) {
    SqlPtr s = Sql("SELECT * FROM table_number_" + std::to_string(i) + " WHERE id = %s");
    r.Run(s, loop_site_);
    r.Run(s, loop_site_);
  }
  SpanData root;
  root.events.push_back(Event{"user.event", 1, {}, 0});
  stats.OnRootEnd(root);
  EXPECT_EQ(root.attributes.size(), 3u);
  EXPECT_EQ(root.dropped_attributes_count, 1u);  // 4 written, the oldest evicted
  ASSERT_EQ(root.events.size(), 2u);
  // 1 user event + 3 reported groups into room for 2: the two oldest went.
  EXPECT_EQ(root.dropped_events_count, 2u);
  for (const Event& e : root.events) {
    EXPECT_EQ(e.name, "djtrace.n_plus_one");
    EXPECT_EQ(e.attributes.size(), 4u);
    EXPECT_GT(e.dropped_attributes_count, 0u);
    for (const auto& a : e.attributes)
      if (auto* s = std::get_if<std::string>(&a.value)) EXPECT_LE(s->size(), 10u);
  }
}

TEST_F(QueryStatsTest, RecordsAfterTheRootEndedAreCountedNotFlagged) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 2;
  QueryStats stats(o, limits_);
  Recorder r{stats};
  r.Run(customer_by_pk_, loop_site_);
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_FALSE(r.Run(customer_by_pk_, loop_site_));
  EXPECT_EQ(stats.Summary().query_count, 2u);
  EXPECT_EQ(stats.Summary().n_plus_one_groups, 0u);
}

TEST_F(QueryStatsTest, ConcurrentRecordsAreAllCounted) {
  QueryStatsOptions o;
  o.n_plus_one_threshold = 100;
  QueryStats stats(o, limits_);
  std::vector<std::thread> threads;
  std::atomic<int> crossings{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      CallSite site = CallSite::Make(view_, 100 + t % 2);
      for (int i = 0; i < 1000; ++i) {
        QueryRecord q;
        q.sql = &customer_by_pk_;
        q.site = &site;
        q.duration_ns = 1000;
        q.has_exact_key = true;
        q.exact_key = static_cast<uint64_t>(i);
        if (stats.Record(q)) crossings.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  QueryStatsSummary s = stats.Summary();
  EXPECT_EQ(s.query_count, 8000u);
  EXPECT_EQ(s.total_duration_ns, 8'000'000u);
  EXPECT_EQ(s.duplicate_count, 7000u);  // 1000 distinct keys
  EXPECT_EQ(crossings.load(), 2);       // two call sites
}

TEST_F(QueryStatsTest, RepeatedCacheGets) {
  QueryStatsOptions o;
  o.repeated_cache_get_threshold = 3;
  QueryStats stats(o, limits_);
  EXPECT_FALSE(stats.RecordCacheGet(11, false, loop_site_));
  EXPECT_FALSE(stats.RecordCacheGet(11, true, other_site_));
  EXPECT_FALSE(stats.RecordCacheGet(12, true, loop_site_));
  EXPECT_TRUE(stats.KnowsCacheKey(11));
  EXPECT_FALSE(stats.KnowsCacheKey(13));
  EXPECT_TRUE(stats.RecordCacheGet(11, true, other_site_));
  EXPECT_FALSE(stats.RecordCacheGet(11, true, other_site_));
  QueryStatsSummary s = stats.Summary();
  EXPECT_EQ(s.cache_get_count, 5u);
  EXPECT_EQ(s.repeated_cache_get_count, 3u);
  auto repeated = stats.RepeatedCacheGets();
  ASSERT_EQ(repeated.size(), 1u);
  EXPECT_EQ(repeated[0].gets, 4u);
  EXPECT_EQ(repeated[0].hits, 3u);
  EXPECT_EQ(repeated[0].site.lineno, 42);  // the first get's site
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.cache.repeated_get_count"), 3);
  ASSERT_EQ(root.events.size(), 1u);
  EXPECT_EQ(root.events[0].name, "djtrace.cache.repeated_get");
  EXPECT_EQ(IntAttr(root.events[0].attributes, "djtrace.cache.get_count"), 4);
}

TEST_F(QueryStatsTest, RepeatedCacheGetsKeepAliasAndExportableKey) {
  QueryStatsOptions o;
  o.repeated_cache_get_threshold = 2;
  QueryStats stats(o, limits_);
  EXPECT_FALSE(stats.RecordCacheGet(7, true, loop_site_, "default", "user:REDACTED"));
  EXPECT_TRUE(stats.RecordCacheGet(7, false, loop_site_, "other", "ignored"));  // first wins
  EXPECT_FALSE(stats.RecordCacheGet(8, true, loop_site_, "sessions"));
  EXPECT_TRUE(stats.RecordCacheGet(8, true, loop_site_, "sessions"));
  SpanData root;
  stats.OnRootEnd(root);
  ASSERT_EQ(root.events.size(), 2u);
  const auto& first = root.events[0].attributes;
  EXPECT_EQ(StrAttr(first, "djtrace.cache.alias"), "default");
  EXPECT_EQ(StrAttr(first, "djtrace.cache.key"), "user:REDACTED");
  EXPECT_EQ(IntAttr(first, "djtrace.cache.hit_count"), 1);
  const auto& second = root.events[1].attributes;
  EXPECT_EQ(StrAttr(second, "djtrace.cache.alias"), "sessions");
  for (const auto& a : second) EXPECT_NE(a.key, "djtrace.cache.key");  // none given
}

TEST_F(QueryStatsTest, CallSiteIdentity) {
  auto a = MakeCodeLocation("/app/views.py", "f");
  auto b = MakeCodeLocation("/app/views.py", "g");
  EXPECT_NE(a->hash, b->hash);
  EXPECT_EQ(CallSite::Make(a, 3).id, CallSite::Make(a, 3).id);
  EXPECT_NE(CallSite::Make(a, 3).id, CallSite::Make(a, 4).id);
  EXPECT_NE(CallSite::Make(a, 3).id, CallSite::Make(b, 3).id);
  EXPECT_NE(CallSite::Make(a, 0).id, 0u);
  EXPECT_EQ(CallSite::Make(nullptr, 3).id, 0u);
  EXPECT_EQ(FingerprintHex(0xc0ffee), "0000000000c0ffee");
}

TEST_F(QueryStatsTest, ATemplateLocationIsPartOfTheCallSite) {
  auto page = MakeCodeLocation("/srv/app/templates/orders.html", "orders.html");
  auto at = [&](const std::shared_ptr<const CodeLocation>& code, int line, int template_line) {
    CallSite site = CallSite::Make(code, line);
    site.SetTemplate(page, template_line);
    return site;
  };
  EXPECT_EQ(at(view_, 42, 7).id, at(view_, 42, 7).id);
  EXPECT_NE(at(view_, 42, 7).id, at(view_, 42, 8).id);
  EXPECT_NE(at(view_, 42, 7).id, loop_site_.id);
  // A template without an application frame (a generic view rendered it) still identifies.
  EXPECT_NE(at(nullptr, 0, 7).id, 0u);
  EXPECT_NE(at(nullptr, 0, 7).id, at(nullptr, 0, 8).id);
  CallSite unchanged = loop_site_;
  unchanged.SetTemplate(nullptr, 3);
  EXPECT_EQ(unchanged.id, loop_site_.id);
  EXPECT_FALSE(unchanged.in_template());

  // Two template lines under one render call are two groups; the event names the template.
  QueryStats stats({}, limits_);
  Recorder r{stats};
  const CallSite line_7 = at(view_, 42, 7), line_9 = at(view_, 42, 9);
  for (int i = 0; i < 5; ++i) r.Run(customer_by_pk_, line_7, 1.0, "Order.customer");
  for (int i = 0; i < 4; ++i) r.Run(customer_by_pk_, line_9, 1.0, "Order.customer");
  ASSERT_EQ(stats.NPlusOneGroups().size(), 1u);
  SpanData root;
  stats.OnRootEnd(root);
  ASSERT_EQ(root.events.size(), 1u);
  const auto& e = root.events[0].attributes;
  EXPECT_EQ(StrAttr(e, "code.filepath"), "/srv/app/shop/views.py");
  EXPECT_EQ(IntAttr(e, "code.lineno"), 42);
  EXPECT_EQ(StrAttr(e, "djtrace.template.name"), "orders.html");
  EXPECT_EQ(IntAttr(e, "djtrace.template.lineno"), 7);
}

}  // namespace
}  // namespace djtrace::analysis
