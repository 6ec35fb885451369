// Encoder throughput on one core: OTLP protobuf, OTLP/JSON and gzip, for batches of typical
// request spans (10 attributes, one event every other span). Prints one JSON line.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "export/gzip.h"
#include "export/otlp_json.h"
#include "export/otlp_proto.h"
#include "trace/ids.h"

namespace {

std::vector<djtrace::SpanData> MakeSpans(size_t n) {
  auto resource = std::make_shared<djtrace::Resource>();
  resource->attributes = {{"service.name", std::string("django-order-service")},
                          {"service.version", std::string("1.0.0")}};
  auto scope = std::make_shared<djtrace::InstrumentationScope>();
  scope->name = "djtrace.django";
  scope->version = "0.1.0";
  std::vector<djtrace::SpanData> spans(n);
  for (size_t i = 0; i < n; ++i) {
    auto& s = spans[i];
    s.trace_id = djtrace::NewTraceId();
    s.span_id = djtrace::NewSpanId();
    s.parent_span_id = djtrace::NewSpanId();
    s.flags = 0x101;
    s.name = "SELECT orders";
    s.kind = djtrace::SpanKind::kClient;
    s.start_time_unix_nano = 1700000000000000000ull + i * 1000;
    s.end_time_unix_nano = s.start_time_unix_nano + 250000;
    s.attributes = {
        {"db.system.name", std::string("postgresql")},
        {"db.namespace", std::string("orders")},
        {"db.operation.name", std::string("SELECT")},
        {"db.collection.name", std::string("orders")},
        {"db.query.text", std::string("SELECT \"orders\".\"id\", \"orders\".\"status\" FROM "
                                      "\"orders\" WHERE \"orders\".\"id\" = %s LIMIT 21")},
        {"server.address", std::string("127.0.0.1")},
        {"server.port", int64_t{5432}},
        {"db.response.returned_rows", int64_t{1}},
        {"code.filepath", std::string("/app/orders/views.py")},
        {"code.lineno", int64_t{42}},
    };
    if (i % 2 == 0) s.events.push_back({"cache.miss", s.start_time_unix_nano + 10, {}, 0});
    s.resource = resource;
    s.scope = scope;
  }
  return spans;
}

// Seconds per measurement (1 by default; shorter for `make bench-quick`).
double g_budget = 1.0;

template <typename Fn>
double SpansPerSecond(size_t spans_per_batch, Fn fn) {
  using Clock = std::chrono::steady_clock;
  size_t done = 0;
  auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  while (elapsed() < g_budget) {
    for (int i = 0; i < 20; ++i) fn();
    done += 20 * spans_per_batch;
  }
  return done / elapsed();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_budget = std::atof(argv[1]);
  const size_t batch = 512;
  std::vector<djtrace::SpanData> spans = MakeSpans(batch);
  std::vector<const djtrace::SpanData*> view;
  for (auto& s : spans) view.push_back(&s);
  std::span<const djtrace::SpanData* const> v(view.data(), view.size());

  std::string out;
  double proto = SpansPerSecond(batch, [&] {
    out.clear();
    djtrace::EncodeExportTraceServiceRequest(v, out);
  });
  const size_t proto_bytes = out.size();
  std::string json;
  double json_rate = SpansPerSecond(batch, [&] {
    json.clear();
    djtrace::EncodeExportTraceServiceRequestJson(v, json);
  });
  // gzip at the level export uses, and at zlib's default for comparison.
  std::string gz;
  double gzip_rate = SpansPerSecond(batch, [&] {
    out.clear();
    djtrace::EncodeExportTraceServiceRequest(v, out);
    gz.clear();
    djtrace::GzipCompress(out, gz, djtrace::kExportGzipLevel);
  });
  std::string gz6;
  double gzip6_rate = SpansPerSecond(batch, [&] {
    out.clear();
    djtrace::EncodeExportTraceServiceRequest(v, out);
    gz6.clear();
    djtrace::GzipCompress(out, gz6, 6);
  });
  std::printf(
      "{\"protobuf_spans_per_s\": %.0f, \"json_spans_per_s\": %.0f, "
      "\"protobuf_gzip_spans_per_s\": %.0f, \"protobuf_bytes_per_span\": %.1f, "
      "\"gzip_bytes_per_span\": %.1f, \"gzip_level\": %d, \"protobuf_gzip6_spans_per_s\": %.0f, "
      "\"gzip6_bytes_per_span\": %.1f}\n",
      proto, json_rate, gzip_rate, double(proto_bytes) / batch, double(gz.size()) / batch,
      djtrace::kExportGzipLevel, gzip6_rate, double(gz6.size()) / batch);
  return 0;
}
