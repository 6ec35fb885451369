"""Per-query cost of djtrace's database tracing, in-process, SQLite.

Each configuration runs in its own process, interleaved over several rounds; figures are
min / median / max over rounds, in microseconds of the application thread's CPU time per
query (time.thread_time: steady on a busy machine; the export worker thread is not included):

- untraced:      Django without djtrace.
- traced:        djtrace with every database feature on (span, query source, relation
                 tracking, per-root statistics and N+1 detection); batch export to /dev/null.
- no-source:     traced, without the query-source frame walk (db_query_source=False).

The workload is `Order.objects.filter(pk=...).first()` (an ORM query with the compiler, the
cursor wrapper and SQLite), in roots of six queries each, as a request of that shape would run
them ("in roots"), and one query per root span ("lone").

    .venv/bin/python bench/db_queries.py [--rounds 5] [--queries 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "tests" / "integrations" / "django"

WORKLOAD = textwrap.dedent("""
    import json, os, sys, tempfile, time
    mode, n = sys.argv[1], int(sys.argv[2])
    sys.path[:0] = [sys.argv[3]]
    only = sys.argv[4] if len(sys.argv) > 4 else None
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    import django
    from django.conf import settings
    apps = ["project.shop"]
    djtrace_settings = {"exporters": "file", "file_path": "/dev/null",
                        "bsp_max_queue_size": 65536, "bsp_max_export_batch_size": 4096}
    if mode != "untraced":
        apps.append("djtrace")
    if mode == "no-source":
        os.environ["DJTRACE_DB_QUERY_SOURCE"] = "false"
    db_path = ":memory:"
    settings.configure(INSTALLED_APPS=apps, DJTRACE=djtrace_settings, USE_TZ=True,
                       DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                              "NAME": db_path}},
                       DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
    if mode != "untraced":
        os.environ.pop("OTEL_TRACES_EXPORTER")
    django.setup()
    from django.apps import apps as registry
    from django.db import connection
    from project.shop.models import Customer, Order
    with connection.schema_editor() as editor:
        for model in registry.get_app_config("shop").get_models():
            editor.create_model(model)
    c = Customer.objects.create(name="c", email="c@example.com")
    pks = [Order.objects.create(customer=c, reference=f"R{i}", total=i).pk for i in range(100)]
    from opentelemetry import trace
    tracer = trace.get_tracer("bench")
    def in_roots(count):
        i = 0
        while i < count:
            if mode == "untraced":
                for k in range(6):
                    Order.objects.filter(pk=pks[(i + k) % 100]).first()
            else:
                with tracer.start_as_current_span("root"):
                    for k in range(6):
                        Order.objects.filter(pk=pks[(i + k) % 100]).first()
            i += 6
        return i
    def lone(count):
        for i in range(count):
            Order.objects.filter(pk=pks[i % 100]).first()
        return count
    out = {}
    for name, fn in (("in roots", in_roots), ("lone", lone)):
        if only is not None and name != only:
            continue
        fn(600)  # warm up: caches, code objects
        # CPU time of this thread: what the application's thread pays (the export worker's
        # encoding is not in it), and steady on a machine that runs other work.
        t0 = time.thread_time()
        done = fn(n)
        out[name] = (time.thread_time() - t0) / done * 1e6
    if mode != "untraced":
        from djtrace import _native
        out["sql_cache"] = _native.db_cache_stats()
        trace.get_tracer_provider().force_flush()
    print(json.dumps(out))
""")

MODES = ("untraced", "traced", "no-source")


def run(mode: str, queries: int) -> dict:
    result = subprocess.run([sys.executable, "-c", WORKLOAD, mode, str(queries), str(PROJECT)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def instructions(mode: str, workload: str, queries: int) -> tuple[int, int]:
    """Instructions executed (valgrind's callgrind counter): by the application's thread, and
    by every thread (the export worker's encoding included)."""
    import glob
    import tempfile

    out = os.path.join(tempfile.mkdtemp(), "cg")
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
         sys.executable, "-c", WORKLOAD, mode, str(queries), str(PROJECT), workload],
        capture_output=True, text=True, check=True)
    per_thread = {}
    for path in glob.glob(out + "-*"):
        with open(path) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    per_thread[path.rsplit("-", 1)[1]] = int(line.split()[1])
                    break
        os.remove(path)
    return per_thread.get("01", 0), sum(per_thread.values())


def main_callgrind(queries: int) -> None:
    # The difference between two runs of different lengths cancels start-up and set-up.
    print(f"{'configuration':<12} {'workload':<9} {'app thread/query':>17} {'added':>9} "
          f"{'all threads/query':>18} {'added':>9}")
    base = {}
    for mode in MODES:
        for workload in ("in roots", "lone"):
            # Twice, keeping the lower figure: a run now and then counts a burst of work that
            # is not the workload's (thread hand-offs under valgrind's serialised threads).
            runs = []
            for _ in range(2):
                small = instructions(mode, workload, queries)
                large = instructions(mode, workload, 2 * queries)
                runs.append(((large[0] - small[0]) / queries, (large[1] - small[1]) / queries))
            app, total = min(runs)
            if mode == "untraced":
                base[workload] = (app, total)
                added = ("", "")
            else:
                added = (f"{app - base[workload][0]:+,.0f}", f"{total - base[workload][1]:+,.0f}")
            print(f"{mode:<12} {workload:<9} {app:17,.0f} {added[0]:>9} {total:18,.0f} "
                  f"{added[1]:>9}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions per query under valgrind instead of timing")
    args = parser.parse_args()
    if args.callgrind:
        main_callgrind(args.queries)
        return
    samples: dict = {m: {"in roots": [], "lone": []} for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            r = run(mode, args.queries)
            for key in ("in roots", "lone"):
                samples[mode][key].append(r[key])
    base = {k: statistics.median(v) for k, v in samples["untraced"].items()}
    print(f"{'configuration':<12} {'workload':<9} {'min':>7} {'median':>7} {'max':>7} "
          f"{'added (median)':>15}   us/query, {args.queries} queries x {args.rounds} rounds")
    for mode in MODES:
        for key, values in samples[mode].items():
            med = statistics.median(values)
            added = "" if mode == "untraced" else f"{med - base[key]:+.2f}"
            print(f"{mode:<12} {key:<9} {min(values):7.2f} {med:7.2f} {max(values):7.2f} "
                  f"{added:>15}")


if __name__ == "__main__":
    main()
