#!/usr/bin/env bash
# Runs the side-by-side benchmark (issue 7): djtrace, the official OpenTelemetry stack and
# ddtrace (when it installs here), untraced as the reference, interleaved in one session; the
# report and charts go to bench/results/<timestamp>/ and bench/results/latest/.
#   bash scripts/bench.sh            full session (about 30 minutes on 2 cores)
#   bash scripts/bench.sh --quick    a short session (about three minutes once set up)
# Extra arguments go to bench/run.py (--rounds N, --only macro,unreachable,inproc,celery,micro,
# instructions).
# Nothing here gates on time: the report marks each goal pass or miss.
set -euo pipefail
cd "$(dirname "$0")/.."
command_line="bash scripts/bench.sh${*:+ $*}"
setup_start=$(date +%s)

bash scripts/bootstrap.sh
# valgrind (Debian's package) counts instructions per request (bench/harness/instructions.py,
# bench/django_requests.py --callgrind); without it the report says they were not measured.
if ! dpkg -s valgrind >/dev/null 2>&1; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  { "${sudo_cmd[@]}" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq valgrind \
        >/dev/null; } || echo "bench: valgrind did not install; instructions will not be counted"
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" -r requirements/bench.txt
# ddtrace is kept out of .venv (it brings a pytest plugin and its own wrapt): it goes into a
# directory of its own that only the ddtrace configuration puts on its PYTHONPATH. When it
# cannot be installed here, the report says so and the other configurations still run.
if [ ! -d build/bench/ddtrace/ddtrace ]; then
  mkdir -p build/bench
  "${pip[@]}" --target build/bench/ddtrace -r requirements/bench-ddtrace.txt \
    || echo "bench: ddtrace did not install; it will be reported as not measured"
fi

# PostgreSQL and Redis instances of the benchmark's own (data under var/bench, ports of their
# own), so that a test session stopping the shared ones cannot stop a benchmark half-way.
export DJTRACE_VAR=${DJTRACE_BENCH_VAR:-$PWD/var/bench}
export DJTRACE_PG_PORT=${DJTRACE_BENCH_PG_PORT:-54339}
export DJTRACE_REDIS_PORT=${DJTRACE_BENCH_REDIS_PORT:-63809}
started=()
for service in postgres redis; do
  port=$([ "$service" = postgres ] && echo "$DJTRACE_PG_PORT" || echo "$DJTRACE_REDIS_PORT")
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    bash scripts/services.sh start "$service"
    started+=("$service")
  fi
done
stop_started() {
  if [ ${#started[@]} -gt 0 ]; then bash scripts/services.sh stop "${started[@]}"; fi
}
trap stop_started EXIT

export BENCH_SETUP_SECONDS=$(( $(date +%s) - setup_start ))
.venv/bin/python bench/run.py --command "$command_line" "$@"
