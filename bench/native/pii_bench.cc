// PII engine throughput on one core over a file of "key<TAB>value" lines (written by
// bench/pii.py), and the cost of redacting a typical 10-attribute request span: the first time
// its values are seen (scanned), and again (the per-thread memo of clean values, as an export
// worker sees the values that repeat from span to span).
// Usage: pii_bench FILE PROFILE. Prints one JSON line.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "pii/redactor.h"

namespace {

// CPU time of this thread: the figures stay meaningful on a shared, busy machine.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
};

double Seconds(Clock::time_point start) { return Clock::now() - start; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pii_bench FILE PROFILE [SECONDS]\n");
    return 2;
  }
  // Seconds per measurement loop (1 by default; shorter for `make bench-quick`).
  const double budget = argc > 3 ? std::atof(argv[3]) : 1.0;
  std::vector<std::pair<std::string, std::string>> values;
  std::ifstream in(argv[1]);
  std::string line;
  size_t bytes = 0;
  while (std::getline(in, line)) {
    auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    values.emplace_back(line.substr(0, tab), line.substr(tab + 1));
    bytes += line.size() - tab - 1;
  }
  djtrace::pii::RedactionConfig config;
  config.profile = *djtrace::pii::ProfileFromName(argv[2]);
  std::string error;
  auto memoizing = djtrace::pii::Redactor::Build(config, &error);
  // The scanner's own speed: every value scanned, however often it repeats.
  config.memoize = false;
  auto redactor = djtrace::pii::Redactor::Build(config, &error);
  if (!redactor || !memoizing) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }

  // Throughput over the whole file, values copied fresh each pass (as export would see them).
  size_t processed = 0;
  auto start = Clock::now();
  std::string work;
  while (Seconds(start) < budget) {
    for (const auto& [key, value] : values) {
      work.assign(value);
      redactor->RedactString(key, work);
    }
    processed += bytes;
  }
  const double mb_per_s = processed / Seconds(start) / 1e6;

  // A typical Django request span: its name and 10 attributes, as the request integration
  // records them (two of them numbers).
  std::vector<djtrace::SpanData> spans(1);
  {
    djtrace::SpanData& s = spans[0];
    s.name = "GET api/orders/<int:pk>/";
    s.attributes = {
        {"http.request.method", std::string("GET")},
        {"url.scheme", std::string("https")},
        {"url.path", std::string("/api/orders/48213/")},
        {"url.query", std::string("page=2&sort=-created_at&status=pending")},
        {"http.route", std::string("api/orders/<int:pk>/")},
        {"server.address", std::string("shop.example.com")},
        {"server.port", int64_t{443}},
        {"client.address", std::string("10.24.3.7")},
        {"user_agent.original",
         std::string("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/126.0.0.0 Safari/537.36")},
        {"http.response.status_code", int64_t{200}},
    };
  }
  auto span_seconds = [&](const djtrace::pii::Redactor& r) {
    size_t done = 0;
    const auto begin = Clock::now();
    while (Seconds(begin) < budget) {
      for (const auto& s : spans) {
        djtrace::SpanData copy = s;
        r.RedactSpan(copy);
      }
      done += spans.size();
    }
    return Seconds(begin) / done;
  };
  const double scanned = span_seconds(*redactor);
  const double repeated = span_seconds(*memoizing);
  // Subtract the cost of copying the span, which export does not pay.
  size_t copies = 0;
  start = Clock::now();
  while (Seconds(start) < 0.3 * budget) {
    for (const auto& s : spans) {
      djtrace::SpanData copy = s;
      asm volatile("" : : "r"(&copy) : "memory");
    }
    copies += spans.size();
  }
  const double copy_ns = Seconds(start) / copies * 1e9;
  std::printf(
      "{\"mb_per_s\": %.1f, \"ns_per_span\": %.0f, \"ns_per_span_repeated\": %.0f, "
      "\"values\": %zu, \"bytes\": %zu}\n",
      mb_per_s, scanned * 1e9 - copy_ns, repeated * 1e9 - copy_ns, values.size(), bytes);
  return 0;
}
