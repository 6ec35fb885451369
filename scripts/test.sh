#!/usr/bin/env bash
# Runs every test: ruff over the Python code, native unit tests (GoogleTest via CTest, then again
# under ASan+UBSan), a short libFuzzer run of every fuzz target, and the Python suite (pytest).
# FUZZ_SECONDS (default 15) sets each fuzzer's run; SKIP_SANITIZE=1 skips the sanitizer pass
# for quick local iterations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# The PostgreSQL, Redis and MariaDB servers the tests start get ports of this checkout's own
# (from a hash of its path), so that test runs in two checkouts at once neither share nor stop
# each other's servers. DJTRACE_PG_PORT / DJTRACE_REDIS_PORT / DJTRACE_MYSQL_PORT choose them
# instead. They lie below Linux's ephemeral ports (32768 and up): the tests' own client
# connections take local ports from that range, and a server started while one of them holds
# its port cannot listen.
if [ -z "${DJTRACE_PG_PORT:-}" ] || [ -z "${DJTRACE_REDIS_PORT:-}" ] ||
   [ -z "${DJTRACE_MYSQL_PORT:-}" ]; then
  checkout_hash=$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)
  port_base=$((20000 + checkout_hash % 3000 * 4))
  export DJTRACE_PG_PORT=${DJTRACE_PG_PORT:-$port_base}
  export DJTRACE_REDIS_PORT=${DJTRACE_REDIS_PORT:-$((port_base + 1))}
  export DJTRACE_MYSQL_PORT=${DJTRACE_MYSQL_PORT:-$((port_base + 2))}
fi
echo "== test servers: PostgreSQL on 127.0.0.1:$DJTRACE_PG_PORT, Redis on :$DJTRACE_REDIS_PORT," \
  "MariaDB on :$DJTRACE_MYSQL_PORT"

jobs=$(nproc)
echo "== lint (ruff, the rules pinned in pyproject.toml)"
.venv/bin/python -m ruff check .

echo "== native unit tests"
cmake -S . -B build/native-tests -G Ninja -DDJTRACE_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/native-tests -j "$jobs"
ctest --test-dir build/native-tests --output-on-failure -j "$jobs"

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== native unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
  cmake -S . -B build/native-asan -G Ninja -DDJTRACE_BUILD_TESTS=ON -DDJTRACE_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build/native-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build/native-asan --output-on-failure -j "$jobs"
fi

echo "== fuzzers (${FUZZ_SECONDS:-15} s each)"
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DDJTRACE_BUILD_FUZZERS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$jobs"
shopt -s nullglob
for fuzzer in build/fuzz/native/*_fuzz; do
  name=$(basename "$fuzzer")
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  seeds=()
  [ -d "native/fuzz/corpus/$name" ] && seeds=("native/fuzz/corpus/$name")
  echo "-- $name"
  "$fuzzer" -max_total_time="${FUZZ_SECONDS:-15}" -print_final_stats=0 "$corpus" "${seeds[@]}" \
    2>build/fuzz/$name.log || { tail -40 build/fuzz/$name.log; exit 1; }
done

echo "== Python tests (Django suites on SQLite)"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

if [ -d tests/integrations/django ]; then
  echo "== Django suite again on PostgreSQL"
  DJTRACE_TEST_DB=postgres .venv/bin/python -m pytest tests/integrations/django -q \
    -p no:cacheprovider "$@"
  echo "== Django suite again on MariaDB (Django's MySQL backend, mysqlclient)"
  DJTRACE_TEST_DB=mysql .venv/bin/python -m pytest tests/integrations/django -q \
    -p no:cacheprovider "$@"
fi
