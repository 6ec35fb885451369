// Cost of the per-root N+1 analysis (analysis/query_stats): one root's statistics created,
// its queries recorded, and the root span written at the end, for roots of the shape of a
// request (6 queries, 4 statements) and of an N+1 listing (1 + 2 x 25 lazy loads). Prints one
// JSON line, nanoseconds per root and per recorded query.
//
//   g++ -O2 -std=c++20 -Inative bench/native/query_stats_bench.cc \
//     build/native-analysis/native/libdjtrace_analysis.a \
//     build/native-analysis/native/libdjtrace_sql.a -o /tmp/query_stats_bench
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/query_stats.h"
#include "sql/obfuscator.h"

namespace {

using djtrace::analysis::CallSite;
using djtrace::analysis::ExactKey;
using djtrace::analysis::MakeCodeLocation;
using djtrace::analysis::QueryRecord;
using djtrace::analysis::QueryStats;
using SqlPtr = std::shared_ptr<const djtrace::sql::ObfuscatedSql>;

struct Query {
  SqlPtr sql;
  CallSite site;
  std::string raw;
  std::string params;
  std::string_view relation;
};

double RunRoots(const std::vector<Query>& queries, int roots) {
  djtrace::SpanLimits limits;
  uint64_t sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < roots; ++r) {
    auto stats = std::make_shared<QueryStats>(djtrace::analysis::QueryStatsOptions{}, limits);
    uint64_t now = 1'700'000'000'000'000'000ull;
    for (const Query& q : queries) {
      QueryRecord rec;
      rec.sql = &q.sql;
      rec.site = &q.site;
      rec.relation = q.relation;
      rec.duration_ns = 40'000;
      rec.end_unix_nano = now += 50'000;
      rec.has_exact_key = true;
      rec.exact_key = ExactKey(q.sql->fingerprint, q.raw, q.params);
      sink += stats->Record(rec);
    }
    djtrace::SpanData root;
    stats->OnRootEnd(root);
    sink += root.attributes.size() + root.events.size();
  }
  auto t1 = std::chrono::steady_clock::now();
  if (sink == 42) std::puts("");
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / roots;
}

}  // namespace

int main() {
  auto view = MakeCodeLocation("/srv/app/shop/views.py", "order_list");
  auto sql = [](const char* text) {
    return std::make_shared<const djtrace::sql::ObfuscatedSql>(
        djtrace::sql::Obfuscate(text, djtrace::sql::Dialect::kPostgres));
  };
  const char* kOrders =
      "SELECT \"orders\".\"id\", \"orders\".\"customer_id\", \"orders\".\"reference\" FROM "
      "\"orders\" ORDER BY \"orders\".\"id\" ASC";
  const char* kCustomer =
      "SELECT \"customers\".\"id\", \"customers\".\"name\", \"customers\".\"email\" FROM "
      "\"customers\" WHERE \"customers\".\"id\" = %s LIMIT 21";
  const char* kItems =
      "SELECT \"order_items\".\"id\", \"order_items\".\"order_id\", \"order_items\".\"sku\" FROM "
      "\"order_items\" WHERE \"order_items\".\"order_id\" = %s";
  const char* kSession =
      "SELECT \"django_session\".\"session_data\" FROM \"django_session\" WHERE "
      "(\"django_session\".\"expire_date\" > %s AND \"django_session\".\"session_key\" = %s)";

  std::vector<Query> request;  // 6 queries, 4 statements, 5 call sites
  request.push_back({sql(kSession), CallSite::Make(view, 10), kSession, "s:abc", {}});
  request.push_back({sql(kOrders), CallSite::Make(view, 12), kOrders, "", {}});
  for (int i = 0; i < 3; ++i)
    request.push_back({sql(kCustomer), CallSite::Make(view, 13), kCustomer,
                       "i:" + std::to_string(i), "Order.customer"});
  request.push_back({sql(kItems), CallSite::Make(view, 20), kItems, "i:1", {}});

  std::vector<Query> listing;  // the bad listing: 1 + 25 customers + 25 item lists
  listing.push_back({sql(kOrders), CallSite::Make(view, 12), kOrders, "", {}});
  for (int i = 0; i < 25; ++i) {
    listing.push_back({sql(kCustomer), CallSite::Make(view, 13), kCustomer,
                       "i:" + std::to_string(i), "Order.customer"});
    listing.push_back({sql(kItems), CallSite::Make(view, 14), kItems, "i:" + std::to_string(i),
                       "Order.items"});
  }

  RunRoots(request, 20000);  // warm up
  double small = RunRoots(request, 200000);
  double large = RunRoots(listing, 50000);
  std::printf(
      "{\"request_6_queries_ns_per_root\": %.0f, \"per_query_ns\": %.0f, "
      "\"n_plus_one_listing_51_queries_ns_per_root\": %.0f, \"per_query_ns_listing\": %.0f}\n",
      small, small / request.size(), large, large / listing.size());
}
