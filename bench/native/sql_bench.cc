// SQL fingerprint cost per statement, one core: cold (the obfuscator runs: a statement seen for
// the first time, or a cache miss) and cached (SqlCache hit: one hash of the text and one
// lookup, what every later execution of an ORM statement pays). Measured in CPU time of this
// thread, which a shared machine's other work does not inflate. Prints one JSON line.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sql/cache.h"
#include "sql/obfuscator.h"

namespace {

// Statements as Django's ORM sends them to PostgreSQL for an order service.
std::vector<std::string> Statements() {
  return {
      "SELECT \"orders\".\"id\", \"orders\".\"user_id\", \"orders\".\"product_name\", "
      "\"orders\".\"amount\", \"orders\".\"status\", \"orders\".\"created_at\", "
      "\"orders\".\"updated_at\", \"auth_user\".\"id\", \"auth_user\".\"username\" FROM "
      "\"orders\" INNER JOIN \"auth_user\" ON (\"orders\".\"user_id\" = \"auth_user\".\"id\") "
      "ORDER BY \"orders\".\"id\" DESC LIMIT 20",
      "SELECT \"orders\".\"id\", \"orders\".\"user_id\", \"orders\".\"product_name\", "
      "\"orders\".\"amount\", \"orders\".\"status\" FROM \"orders\" WHERE \"orders\".\"id\" = "
      "%s LIMIT 21",
      "SELECT \"order_items\".\"id\", \"order_items\".\"order_id\", "
      "\"order_items\".\"product_sku\", \"order_items\".\"quantity\", "
      "\"order_items\".\"unit_price\" FROM \"order_items\" WHERE \"order_items\".\"order_id\" "
      "= %s",
      "SELECT COUNT(\"orders\".\"id\") AS \"n\", SUM(\"orders\".\"amount\") AS \"spent\" FROM "
      "\"orders\" WHERE \"orders\".\"user_id\" = %s",
      "INSERT INTO \"orders\" (\"user_id\", \"product_name\", \"amount\", \"status\", "
      "\"created_at\", \"updated_at\") VALUES (%s, %s, %s, %s, %s, %s) RETURNING "
      "\"orders\".\"id\"",
      "INSERT INTO \"order_items\" (\"order_id\", \"product_sku\", \"quantity\", "
      "\"unit_price\") VALUES (%s, %s, %s, %s), (%s, %s, %s, %s) RETURNING "
      "\"order_items\".\"id\"",
      "UPDATE \"orders\" SET \"status\" = %s, \"updated_at\" = %s WHERE \"orders\".\"id\" = %s",
      "SELECT \"auth_user\".\"id\", \"auth_user\".\"password\", \"auth_user\".\"last_login\", "
      "\"auth_user\".\"is_superuser\", \"auth_user\".\"username\" FROM \"auth_user\" WHERE "
      "\"auth_user\".\"id\" = %s LIMIT 21",
      "SELECT DISTINCT \"order_items\".\"product_sku\" FROM \"order_items\" INNER JOIN "
      "\"orders\" ON (\"order_items\".\"order_id\" = \"orders\".\"id\") WHERE "
      "\"orders\".\"user_id\" = %s LIMIT 10",
      "SELECT 1 AS \"a\" FROM \"django_session\" WHERE \"django_session\".\"session_key\" = "
      "'q8l1v0d2' LIMIT 1",
  };
}

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Nanoseconds of CPU per call of `fn` over `texts`, run for at least `seconds`.
template <typename Fn>
double NsPerStatement(const std::vector<std::string>& texts, double seconds, Fn fn) {
  size_t done = 0;
  const double start = ThreadSeconds();
  double now = start;
  while (now - start < seconds) {
    for (const std::string& t : texts) fn(t);
    done += texts.size();
    now = ThreadSeconds();
  }
  return (now - start) * 1e9 / done;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  const std::vector<std::string> texts = Statements();
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  using djtrace::sql::Dialect;
  const Dialect dialect = djtrace::sql::DialectFromName("postgresql");

  // Cold: the obfuscator and fingerprint on every call, reusing the output's buffers as the
  // cache's miss path does.
  djtrace::sql::ObfuscatedSql out;
  uint64_t sink = 0;
  const double cold = NsPerStatement(texts, seconds, [&](const std::string& t) {
    djtrace::sql::Obfuscate(t, dialect, {}, out);
    sink += out.fingerprint;
  });

  // Cached: every statement already in the cache.
  djtrace::sql::SqlCache cache;
  for (const auto& t : texts) cache.Get(t, dialect);
  const double cached = NsPerStatement(texts, seconds, [&](const std::string& t) {
    sink += cache.Get(t, dialect)->fingerprint;
  });
  std::printf(
      "{\"cold_ns\": %.1f, \"cached_ns\": %.1f, \"statements\": %zu, \"mean_bytes\": %.0f, "
      "\"checksum\": %llu}\n",
      cold, cached, texts.size(), double(bytes) / texts.size(),
      static_cast<unsigned long long>(sink & 0xff));
  return 0;
}
