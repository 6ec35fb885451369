#include "export/console.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace djtrace {
namespace {

constexpr uint64_t kT = 1'700'000'000'000'000'000ULL;
constexpr uint64_t kMs = 1'000'000;

TraceId TraceOf(uint8_t b) {
  TraceId id{};
  id.fill(b);
  return id;
}
SpanId SpanOf(uint8_t b) {
  SpanId id{};
  id[7] = b;
  return id;
}

struct Batch {
  std::vector<std::unique_ptr<SpanData>> owned;
  std::vector<const SpanData*> spans;
  SpanData& Add(std::string name, uint8_t trace, uint8_t id, uint8_t parent, uint64_t start,
                uint64_t duration) {
    owned.push_back(std::make_unique<SpanData>());
    SpanData& s = *owned.back();
    s.name = std::move(name);
    s.trace_id = TraceOf(trace);
    s.span_id = SpanOf(id);
    if (parent) s.parent_span_id = SpanOf(parent);
    s.start_time_unix_nano = start;
    s.end_time_unix_nano = start + duration;
    spans.push_back(&s);
    return s;
  }
  std::string Render(ConsoleOptions options = {}) const {
    std::string out;
    RenderTraceTree(spans, options, out);
    return out;
  }
};

// An order request, in the order the spans end (children first), as a batch holds them.
Batch OrderRequest() {
  Batch b;
  SpanData& select = b.Add("SELECT orders", 0xAB, 3, 2, kT + 20 * kMs, 5 * kMs);
  select.kind = SpanKind::kClient;
  select.attributes = {{"db.system.name", std::string("postgresql")},
                       {"db.query.text", std::string("SELECT id FROM orders WHERE id = ?")},
                       {"djtrace.n_plus_one.count", int64_t{12}}};
  SpanData& insert = b.Add("INSERT orders", 0xAB, 4, 2, kT + 30 * kMs, 3'200'000);
  insert.kind = SpanKind::kClient;
  insert.status_code = StatusCode::kError;
  insert.status_message = "duplicate key";
  insert.events.push_back({"exception",
                           kT + 33'100'000,
                           {{"exception.type", std::string("IntegrityError")},
                            {"exception.message", std::string("duplicate key")},
                            {"exception.stacktrace", std::string("Traceback ...")}},
                           0});
  SpanData& view = b.Add("OrderViewSet.create", 0xAB, 2, 1, kT + 10 * kMs, 200 * kMs);
  view.attributes = {{"code.function.name", std::string("OrderViewSet.create")}};
  b.Add("render orders.html", 0xAB, 5, 1, kT + 220 * kMs, 12'400'000);
  SpanData& root = b.Add("POST /api/orders/", 0xAB, 1, 0, kT, 250'100'000);
  root.kind = SpanKind::kServer;
  root.attributes = {{"http.request.method", std::string("POST")},
                     {"http.route", std::string("/api/orders/")},
                     {"http.response.status_code", int64_t{201}}};
  return b;
}

TEST(ConsoleTest, DrawsTheTree) {
  EXPECT_EQ(OrderRequest().Render(),
            "POST /api/orders/ (250.1 ms) [SERVER] trace=abababababababababababababababab"
            "  http.route=\"/api/orders/\" http.response.status_code=201\n"
            "├── OrderViewSet.create (200.0 ms)  code.function.name=\"OrderViewSet.create\"\n"
            "│   ├── SELECT orders (5.0 ms) [CLIENT]  db.query.text=\"SELECT id FROM orders "
            "WHERE id = ?\" djtrace.n_plus_one.count=12\n"
            "│   └── INSERT orders (3.2 ms) [CLIENT] ERROR \"duplicate key\"\n"
            "│         • exception (+3.1 ms)  exception.type=\"IntegrityError\" "
            "exception.message=\"duplicate key\"\n"
            "└── render orders.html (12.4 ms)\n");
}

TEST(ConsoleTest, VerboseShowsEverything) {
  Batch b = OrderRequest();
  const_cast<SpanData*>(b.spans[4])
      ->links.push_back(
          {TraceOf(0xCD), SpanOf(9), "", 0, {{"link.kind", std::string("follows")}}, 0});
  ConsoleOptions options;
  options.verbose = true;
  EXPECT_EQ(b.Render(options),
            "POST /api/orders/ (250.1 ms) [SERVER] trace=abababababababababababababababab "
            "span=0000000000000001\n"
            "│ http.request.method=\"POST\"\n"
            "│ http.route=\"/api/orders/\"\n"
            "│ http.response.status_code=201\n"
            "│ → link trace=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd span=0000000000000009 "
            "link.kind=\"follows\"\n"
            "├── OrderViewSet.create (200.0 ms) span=0000000000000002\n"
            "│   │ code.function.name=\"OrderViewSet.create\"\n"
            "│   ├── SELECT orders (5.0 ms) [CLIENT] span=0000000000000003\n"
            "│   │     db.system.name=\"postgresql\"\n"
            "│   │     db.query.text=\"SELECT id FROM orders WHERE id = ?\"\n"
            "│   │     djtrace.n_plus_one.count=12\n"
            "│   └── INSERT orders (3.2 ms) [CLIENT] ERROR \"duplicate key\" "
            "span=0000000000000004\n"
            "│         • exception (+3.1 ms)  exception.type=\"IntegrityError\" "
            "exception.message=\"duplicate key\" exception.stacktrace=\"Traceback ...\"\n"
            "└── render orders.html (12.4 ms) span=0000000000000005\n");
}

TEST(ConsoleTest, ColourMarksErrors) {
  ConsoleOptions options;
  options.color = true;
  std::string out = OrderRequest().Render(options);
  EXPECT_NE(out.find("\x1b[1;31mERROR \"duplicate key\"\x1b[0m"), std::string::npos);
  EXPECT_NE(out.find("\x1b[1mPOST /api/orders/\x1b[0m"), std::string::npos);
  EXPECT_NE(out.find("\x1b[33mdjtrace.n_plus_one.count\x1b[0m=12"), std::string::npos);
  EXPECT_EQ(OrderRequest().Render().find('\x1b'), std::string::npos);
}

TEST(ConsoleTest, TracesInStartOrderAndOrphansAsRoots) {
  Batch b;
  b.Add("late trace", 0x02, 1, 0, kT + 100 * kMs, kMs);
  b.Add("orphan b", 0x01, 3, 9, kT + 5 * kMs, 2600);  // parent 9 is in another batch
  b.Add("orphan a", 0x01, 2, 9, kT + 1 * kMs, 999);
  b.Add("child of b", 0x01, 4, 3, kT + 6 * kMs, 1'500'000'000);
  EXPECT_EQ(b.Render(),
            "orphan a (999 ns) trace=01010101010101010101010101010101 parent=0000000000000009\n"
            "orphan b (3 µs) trace=01010101010101010101010101010101 parent=0000000000000009\n"
            "└── child of b (1.50 s)\n"
            "late trace (1.0 ms) trace=02020202020202020202020202020202\n");
}

TEST(ConsoleTest, ChildrenSortedByStartThenBatchOrder) {
  Batch b;
  b.Add("root", 1, 1, 0, kT, 10 * kMs);
  b.Add("c", 1, 4, 1, kT + 3, kMs);
  b.Add("a", 1, 2, 1, kT + 1, kMs);
  b.Add("b1", 1, 3, 1, kT + 2, kMs);
  b.Add("b2", 1, 5, 1, kT + 2, kMs);
  std::string out = b.Render();
  EXPECT_LT(out.find("── a"), out.find("── b1"));
  EXPECT_LT(out.find("── b1"), out.find("── b2"));
  EXPECT_LT(out.find("── b2"), out.find("└── c"));
}

TEST(ConsoleTest, SurvivesBadIdsAndDeepChains) {
  Batch b;
  b.Add("self", 1, 1, 1, kT, kMs);         // its own parent: a root
  b.Add("cycle x", 1, 2, 3, kT + 1, kMs);  // x <-> y: drawn once each
  b.Add("cycle y", 1, 3, 2, kT + 2, kMs);
  b.Add("dup first", 1, 4, 0, kT + 3, kMs);  // two spans with id 4
  b.Add("dup second", 1, 4, 0, kT + 4, kMs);
  b.Add("under dup", 1, 5, 4, kT + 5, kMs);  // goes under the earlier one
  b.Add("unfinished", 1, 6, 0, kT + 6, 0).end_time_unix_nano = 0;
  b.spans.push_back(nullptr);  // skipped
  EXPECT_EQ(b.Render(),
            "self (1.0 ms) trace=01010101010101010101010101010101 parent=0000000000000001\n"
            "dup first (1.0 ms) trace=01010101010101010101010101010101\n"
            "└── under dup (1.0 ms)\n"
            "dup second (1.0 ms) trace=01010101010101010101010101010101\n"
            "unfinished (? ms) trace=01010101010101010101010101010101\n"
            "cycle x (1.0 ms) trace=01010101010101010101010101010101 parent=0000000000000003\n"
            "└── cycle y (1.0 ms)\n");

  Batch deep;
  for (int i = 0; i < 20000; ++i) {
    deep.owned.push_back(std::make_unique<SpanData>());
    SpanData& s = *deep.owned.back();
    s.trace_id = TraceOf(7);
    s.span_id = SpanOf(0);
    for (int k = 0; k < 4; ++k) s.span_id[4 + k] = static_cast<uint8_t>((i + 1) >> (24 - 8 * k));
    if (i > 0) {
      for (int k = 0; k < 4; ++k) s.parent_span_id[4 + k] = static_cast<uint8_t>(i >> (24 - 8 * k));
    }
    s.name = "n";
    s.start_time_unix_nano = kT + i;
    s.end_time_unix_nano = kT + 2 * 20000 - i;
    deep.spans.push_back(&s);
  }
  std::string out = deep.Render();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 20000);
}

TEST(ConsoleTest, LongValuesAreCutUnlessVerbose) {
  Batch b;
  SpanData& s = b.Add("q\nname", 1, 1, 0, kT, kMs);
  s.attributes = {{"db.query.text", std::string(200, 'x') + "é"}};
  ConsoleOptions options;
  options.max_value_bytes = 10;
  std::string out = b.Render(options);
  EXPECT_NE(out.find("db.query.text=\"xxxxxxxxxx…\""), std::string::npos) << out;
  EXPECT_NE(out.find("q\\nname"), std::string::npos);  // one span, one line
  // Never cut inside a character.
  s.attributes = {{"db.query.text", std::string("aé")}};
  options.max_value_bytes = 2;
  EXPECT_NE(b.Render(options).find("db.query.text=\"a…\""), std::string::npos);
  options.verbose = true;
  s.attributes = {{"db.query.text", std::string(200, 'x')}};
  EXPECT_NE(b.Render(options).find(std::string(200, 'x')), std::string::npos);
}

TEST(ConsoleTest, FindingsShowTheirStatementAndCallSite) {
  Batch b;
  SpanData& root = b.Add("GET orders/", 1, 1, 0, kT, 10 * kMs);
  root.kind = SpanKind::kServer;
  root.events.push_back({"djtrace.n_plus_one",
                         kT + 9 * kMs,
                         {{"db.query.text", std::string("SELECT * FROM users WHERE id = ?")},
                          {"db.query.summary", std::string("SELECT users")},
                          {"djtrace.n_plus_one.count", int64_t{12}},
                          {"code.filepath", std::string("/app/orders/views.py")},
                          {"code.lineno", int64_t{42}},
                          {"code.function", std::string("listing")},
                          {"djtrace.orm.relation", std::string("Order.user")}},
                         0});
  EXPECT_EQ(b.Render(),
            "GET orders/ (10.0 ms) [SERVER] trace=01010101010101010101010101010101\n"
            "  • djtrace.n_plus_one (+9.0 ms)  db.query.text=\"SELECT * FROM users WHERE id = ?\" "
            "djtrace.n_plus_one.count=12 code.filepath=\"/app/orders/views.py\" code.lineno=42 "
            "code.function=\"listing\" djtrace.orm.relation=\"Order.user\"\n");
}

TEST(ConsoleTest, ArraysAndNumbers) {
  Batch b;
  SpanData& s = b.Add("x", 1, 1, 0, kT, kMs);
  s.attributes = {{"djtrace.a", std::vector<int64_t>{1, 2}},
                  {"djtrace.b", std::vector<std::string>{"p", "q"}},
                  {"djtrace.c", 0.5},
                  {"djtrace.d", true}};
  EXPECT_NE(b.Render().find("djtrace.a=[1, 2] djtrace.b=[\"p\", \"q\"] djtrace.c=0.5 "
                            "djtrace.d=true"),
            std::string::npos);
}

}  // namespace
}  // namespace djtrace
