"""Per-request overhead of djtrace's Django integration, in-process (Django's test client).

The page (tests/integrations/django/project, URL /bench/) runs six queries on SQLite, two cache
calls (locmem) and renders a template with an include, behind Django's default middleware
plus three test middleware (ten in all). Each configuration runs in warm processes of its own
(--processes, default 2, in different memory layouts), all started before the first
measurement; then, round after round, every process in turn (in a shuffled order) serves one
slice of --requests requests while the others wait. The machine is shared and its speed drifts
by a third within seconds; slices this short, interleaved, see the same drift, and the ratios
are also given within each round (paired). Three measures per request: CPU time of the
request thread (its latency when nothing else runs), CPU time of the whole process with the
slice's spans exported (each slice ends with a flush), which is what a server pays, and the
difference of the two: the export thread's, plus the request thread's own flush call and span
count at the end of each slice (for djtrace about 86 µs per slice of 10 requests, which a server
does not pay: it flushes at exit). Its quartiles span microseconds where the others' span
hundreds, so with djtrace-base it shows a change to the export path that the others cannot.

  untraced     "djtrace" not in INSTALLED_APPS
  official     the official stack as the guide sets it up ("djtrace" not in INSTALLED_APPS):
               opentelemetry-sdk TracerProvider, BatchSpanProcessor + OTLP/HTTP exporter to a
               sink of its own, DjangoInstrumentor, the dbapi instrumentation on sqlite3 (as
               opentelemetry-instrumentation-sqlite3 applies it)
  djtrace      every layer on (the default), batch processor + OTLP/HTTP exporter to a local
               sink process (bench/sink.py), PII redaction on the export thread (default)
  djtrace-no-db djtrace without database spans (db_spans off): the other layers' share
  request-only djtrace with middleware, view, template, cache and database spans off
  djtrace-base djtrace as above, from another build (BENCH_DJTRACE_BASE, as for
               bench/gunicorn_slices.py): two builds side by side in one run
  djtrace-10   djtrace sampling one trace in ten (parentbased_traceidratio 0.1), as production
               often runs: nine requests in ten pay only for not being recorded
  djtrace-base-10  djtrace-10 from the BENCH_DJTRACE_BASE build

    .venv/bin/python bench/django_requests.py [--rounds 300] [--requests 10] [--processes 2]
                                              [--db sqlite|postgres] [--modes a,b,...]

--modes runs some configurations only (untraced and official always run: the ratios need them).

--db postgres serves the page from PostgreSQL through psycopg (the server scripts/services.sh
runs; a database of the bench's own, dropped afterwards), the official stack's database layer
then being the dbapi instrumentation on psycopg's connect, as the HTTP benchmark applies it.

With --callgrind (valgrind needed), processes instead count the instructions their request
thread executes per request, layer by layer (each configuration in turn on the same warm
process, garbage collected and frozen before each count): figures that do not move with the
machine's load. They do move with memory layout: CPython's method cache (4,096 entries) is
indexed by addresses and hashes, so a process whose environment or hash seed differs hits it
differently, by up to about 40,000 instructions per request here. Under valgrind a given layout
repeats exactly, so --callgrind-runs N (default 3) measures N layouts: run r gives every
configuration the hash seed r and r kilobytes more environment, and the report gives the
median of each row, its range, and each layout's own ratio to the official stack.
--cache-sim adds callgrind's cache simulation (slower) with this machine's caches below the
shared one (lscpu): 32 KB level-1 instruction and data caches, and the 512 KB level 2 as the
last level. It reports the L1 and L2 misses per request of each row and their share of what
the official stack adds. --cold (implies --cache-sim) also writes 4 MB, not counted, before
each counted request, as other processes do between two requests of a Gunicorn worker that
shares its cores. --own adds djtrace's own instructions per request: its native code and the
C API it calls, without the Python its hooks wrap, which layout moves far less (from the call
graph, bench/harness/callgrind_own.py). --sampled-out counts djtrace with a sampler that drops
every trace: what the nine requests in ten that 10% sampling does not record cost.
Between two counted requests (not counted), the spans of the first are exported, for both
tracing stacks: on a real machine the export thread runs alongside on the other core, while
under valgrind threads take turns and it would fall behind, leaving djtrace's pool of span
objects empty and every span allocated anew (which a real run of this page does for 0.8% of
its spans, the first few hundred).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import services, stacks  # noqa: E402
from harness.callgrind_own import own_instructions  # noqa: E402
from harness.instructions import control_library, read_dump  # noqa: E402

PROJECT = ROOT / "tests" / "integrations" / "django"

OFFICIAL_INIT = textwrap.dedent("""
    def official_init(endpoint):
        import os
        import sqlite3.dbapi2
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation import dbapi
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument()
        if os.environ.get("DJTRACE_TEST_DB") == "postgres":
            from harness.stacks import instrument_db
            instrument_db()
        else:
            dbapi.trace_integration(sqlite3.dbapi2, "connect", "sqlite")
""")

WORKLOAD = OFFICIAL_INIT + textwrap.dedent("""
    import json, os, sys, time
    mode = sys.argv[1]
    from django.conf import settings
    settings.DATABASES["default"]["CONN_MAX_AGE"] = None  # one connection, as a server keeps
    if mode in ("untraced", "official"):
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
    if mode == "official":
        official_init(os.environ["BENCH_OFFICIAL_ENDPOINT"])
    elif mode == "djtrace-no-db":
        settings.DJTRACE = {**settings.DJTRACE, "db_spans": False}
    elif mode == "request-only":
        settings.DJTRACE = {**settings.DJTRACE, "middleware_spans": False, "view_spans": False,
                            "template_spans": False, "cache_spans": False, "db_spans": False}
    elif mode == "djtrace-10":
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    import django
    django.setup()
    from django.test import Client
    client = Client()
    for _ in range(300):
        assert client.get("/bench/").status_code == 200
    provider = None
    if mode == "official":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor
        provider = trace.get_tracer_provider()
        class Count(SpanProcessor):
            n = 0
            def on_start(self, span, parent_context=None):
                Count.n += 1
        provider.add_span_processor(Count())
        started = lambda: Count.n
    elif mode != "untraced":
        from opentelemetry import trace
        provider = trace.get_tracer_provider()
        started = lambda: provider._counters()["spans_started"]
    print("ready", flush=True)
    # One slice per line read; the spans are flushed after it, so that no export thread runs
    # while another configuration's slice is measured.
    for line in sys.stdin:
        n = int(line)
        if n == 0:
            break
        s0 = started() if provider is not None else 0
        p0 = time.process_time()
        t0 = time.perf_counter()
        c0 = time.thread_time()
        for _ in range(n):
            client.get("/bench/")
        cpu = time.thread_time() - c0
        wall = time.perf_counter() - t0
        spans = None
        if provider is not None:
            spans = (started() - s0) / n
            if hasattr(provider, "force_flush"):
                provider.force_flush(30000)
        process = time.process_time() - p0
        print(json.dumps({"wall": wall / n * 1e6, "cpu": cpu / n * 1e6,
                          "process": process / n * 1e6, "spans": spans}), flush=True)
""")

PG_PORT = int(os.environ.get("DJTRACE_PG_PORT", "54329"))
PG_DATABASE = "djtrace_bench_requests"

DEFAULT_MODES = ("untraced", "official", "djtrace", "djtrace-no-db", "request-only")
MODES = (*DEFAULT_MODES, "djtrace-base", "djtrace-10", "djtrace-base-10")

# --cache-sim: this machine's caches below the shared one (size, associativity, line; lscpu),
# its 512 KB level 2 as callgrind's last level. --cold: what other processes write between two
# requests (8 times the level 2).
CACHE_SIM_ARGS = ("--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64")
COLD_EVICT_MB = 4

CALLGRIND_WORKLOAD = OFFICIAL_INIT + textwrap.dedent("""
    import ctypes, gc, os, sys
    lib = ctypes.CDLL(sys.argv[1])
    n, mode, evict_mb = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    from django.conf import settings
    if mode in ("untraced", "official"):
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
    if mode == "official":
        official_init(os.environ["BENCH_OFFICIAL_ENDPOINT"])
    import django
    django.setup()
    from django.test import Client
    client = Client()
    # Each request's spans are exported before the next, as the export thread does alongside
    # the request thread on a real machine. Under valgrind threads take turns: without this the
    # export thread would fall thousands of spans behind and djtrace's pool of span objects run
    # dry, so that every span is allocated anew (in a real run of this page, 0.8% are).
    # (Untraced toggles the counting off and on as well, so that every row pays the same for
    # the toggles' own calls.)
    flush = lambda: None
    if mode != "untraced":
        from opentelemetry import trace
        provider = trace.get_tracer_provider()
        flush = lambda: provider.force_flush(30000)
    evict = bytearray(evict_mb << 20)
    fills = (bytes(len(evict) // 64), b"\\x01" * (len(evict) // 64))
    off = {"middleware_spans": False, "view_spans": False, "template_spans": False,
           "cache_spans": False, "db_spans": False}
    if mode == "djtrace":
        from djtrace.integrations.django import settings as dj
        base = dict(settings.DJTRACE)
        steps = [
            ("djtrace: request span only", off),
            ("djtrace: + middleware spans", {**off, "middleware_spans": True}),
            ("djtrace: + view span", {**off, "middleware_spans": True, "view_spans": True}),
            ("djtrace: + template spans", {**off, "middleware_spans": True, "view_spans": True,
                                           "template_spans": True}),
            ("djtrace: + cache spans", {**off, "middleware_spans": True, "view_spans": True,
                                        "template_spans": True, "cache_spans": True}),
            ("djtrace: + database spans (all)", {}),
        ]
    else:
        steps = [(mode, None)]
    for name, extra in steps:
        if extra is not None:
            settings.DJTRACE = {**base, **extra}
            dj.reload()
            from djtrace.integrations.django import db
            db._setting_changed(setting="DJTRACE")
        for _ in range(100):
            client.get("/bench/")
            flush()
        gc.collect()
        gc.freeze()
        lib.cg_zero()
        for i in range(n):
            lib.cg_toggle()  # not counted: the export, the other processes' work
            flush()
            if evict:
                evict[::64] = fills[i & 1]
            lib.cg_toggle()
            client.get("/bench/")
        lib.cg_dump(name.encode())
""")


def run_callgrind(env: dict, requests: int, runs: int, cache_sim: bool = False,
                  cold: bool = False, own: bool = False, sampled_out: bool = False) -> None:
    """Instructions of the request thread per request: untraced, the official stack, and
    djtrace layer by layer, each configuration in processes of its own under callgrind, `runs`
    times (interleaved); the median of each row, and its range. `cold` implies `cache_sim`."""
    cache_sim = cache_sim or cold
    import glob

    rows: dict[str, list[float]] = {}
    owns: dict[str, list[float]] = {}
    misses: dict[str, list[dict[str, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lib = control_library(tmp)
        for run in range(runs):
            # One layout per run, the same for the three configurations of that run.
            layout = {"PYTHONHASHSEED": str(run), "DJTRACE_BENCH_LAYOUT": "x" * (1024 * run)}
            for mode in ("untraced", "official", "djtrace"):
                out = os.path.join(tmp, f"cg-{mode}-{run}.out")
                mode_env = {**env, **layout}
                if sampled_out and mode == "djtrace":
                    mode_env["OTEL_TRACES_SAMPLER"] = "parentbased_always_off"
                subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                                *(CACHE_SIM_ARGS if cache_sim else ()),
                                f"--callgrind-out-file={out}", sys.executable, "-c",
                                CALLGRIND_WORKLOAD, lib, str(requests), mode,
                                str(COLD_EVICT_MB if cold else 0)],
                               env=mode_env, cwd=str(PROJECT), check=True,
                               capture_output=True)
                paths = glob.glob(out + ".*-01")
                for path in sorted(paths, key=lambda p: int(p.split(".")[-1][:-3])):
                    label, events = read_dump(path)
                    if sampled_out and mode == "djtrace" and label:
                        label += " (sampled out)"
                    rows.setdefault(label, []).append(events["Ir"] / requests)
                    if own:
                        owns.setdefault(label, []).append(own_instructions(path) / requests)
                    if cache_sim:
                        misses.setdefault(label, []).append(events)
    labels = list(rows)
    untraced, official_rows = rows[labels[0]], rows[labels[1]]
    base = statistics.median(untraced)
    official = statistics.median(official_rows) - base
    print(f"# instructions of the request thread per request, {requests} requests per step; "
          f"median of {runs} layouts (range); x official: of the medians, then per layout")
    if own:
        print("# djtrace's own: the instructions of djtrace's native code and of the C API it "
              "calls, without the Python its hooks wrap (bench/harness/callgrind_own.py)")
    print(f"{'configuration':<34} {'instructions':>14} {'vs untraced':>12} {'x official':>11}"
          + (f" {'djtrace own':>12}" if own else "") + "  range / per layout")
    for label in labels:
        values = rows[label]
        value = statistics.median(values)
        ratio, per_layout = "-", ""
        if label != "untraced":
            ratio = f"{(value - base) / official:.3f}"
            per_layout = " ".join(f"{(v - u) / (o - u):.3f}"
                                  for v, u, o in zip(values, untraced, official_rows, strict=True))
        own_cell = f" {statistics.median(owns[label]):>12,.0f}" if own else ""
        print(f"{label:<34} {value:>14,.0f} {value - base:>+12,.0f} {ratio:>11}{own_cell}"
              f"  [{min(values):,.0f} - {max(values):,.0f}] {per_layout}")
    if cache_sim:
        print_misses(misses, requests, cold)


def print_misses(misses: dict[str, list[dict[str, int]]], requests: int,
                 cold: bool = False) -> None:
    """The simulated cache misses per request (L1 of 32 KB for instructions and for data, L2 of
    512 KB, as this machine's), and each configuration's added misses as a share of what the
    official stack adds: an added instruction costs far less than an added miss, which is why
    time ratios exceed instruction ratios."""
    labels = list(misses)

    def per_request(label: str, event: str) -> float:
        return statistics.median(e.get(event, 0) for e in misses[label]) / requests

    events = (("Ir", "instructions"), ("I1mr", "L1 instruction misses"),
              ("D1", "L1 data misses (read + write)"), ("ILmr", "L2 instruction misses"),
              ("DL", "L2 data misses (read + write)"))

    def value(label: str, event: str) -> float:
        if event in ("D1", "DL"):
            return per_request(label, event + "mr") + per_request(label, event + "mw")
        return per_request(label, event)

    base, official = labels[0], labels[1]
    state = f"{COLD_EVICT_MB} MB written before each request" if cold else "warm"
    print(f"\n# simulated cache misses per request (L1 32 KB + 32 KB, L2 512 KB; {state}; median "
          "of the layouts); added: x official")
    print(f"{'configuration':<34}" + "".join(f" {what:>30}" for _, what in events))
    for label in labels:
        cells = []
        for event, _ in events:
            v = value(label, event)
            if label == base:
                cells.append(f"{v:>30,.0f}")
                continue
            added, theirs = v - value(base, event), value(official, event) - value(base, event)
            share = f"{added / theirs:.3f}" if theirs > 0 else "-"
            cells.append(f"{added:>+20,.0f} x {share:>7}")
        print(f"{label:<34}" + "".join(f" {c}" for c in cells))


def _env(db: str, endpoint: str, postgres: bool = False) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT / "bench")] + [
            p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "DJTRACE_TEST_DB": "postgres" if postgres else "sqlite",
        "DJTRACE_TEST_SQLITE": db,
        "DJTRACE_TEST_PG_NAME": PG_DATABASE,
        "DJTRACE_TEST_EXPORTERS": "otlp",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
    })
    return env


def _pg_database(create: bool) -> None:
    """Drops the benchmark's own database on the server scripts/services.sh runs, and creates
    it anew when `create`."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")


def _prepare_db(env: dict) -> None:
    setup = textwrap.dedent("""
        import django
        from django.conf import settings
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
        django.setup()
        from django.core.management import call_command
        call_command("migrate", run_syncdb=True, verbosity=0)
        from django.contrib.auth.models import User
        from project.web.models import Note
        for i in range(5):
            User.objects.create(username=f"user{i}")
            Note.objects.create(title=f"note {i}")
    """)
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=str(PROJECT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300,
                        help="rounds; in each, every process serves one slice")
    parser.add_argument("--requests", type=int, default=10,
                        help="requests per slice (with --callgrind: per count, at most 300)")
    parser.add_argument("--processes", type=int, default=2,
                        help="processes (memory layouts) per configuration")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--callgrind-runs", type=int, default=3,
                        help="processes per configuration under callgrind (median reported)")
    parser.add_argument("--cache-sim", action="store_true",
                        help="with --callgrind: also simulate the caches and report misses")
    parser.add_argument("--own", action="store_true",
                        help="with --callgrind: also djtrace's own instructions per request (its "
                             "native code and the C API it calls, not the Python it wraps)")
    parser.add_argument("--sampled-out", action="store_true",
                        help="with --callgrind: djtrace's sampler drops every trace "
                             "(parentbased_always_off): what a request not recorded costs")
    parser.add_argument("--cold", action="store_true",
                        help=f"with --callgrind: --cache-sim, and {COLD_EVICT_MB} MB written "
                             "(not counted) before each counted request")
    parser.add_argument("--no-export", action="store_true",
                        help="no span processor: the request thread's cost alone")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="the page's database: SQLite (default) or PostgreSQL through "
                             "psycopg, on the server scripts/services.sh runs (started and "
                             "stopped here if it is not running); not with --callgrind")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES),
                        help=f"configurations to run, of {', '.join(MODES)} (djtrace-base, "
                             "djtrace-base-10: the build installed in BENCH_DJTRACE_BASE)")
    args = parser.parse_args()
    asked = set(args.modes.split(","))
    if asked - set(MODES):
        parser.error(f"--modes: unknown {', '.join(sorted(asked - set(MODES)))} "
                     f"(known: {', '.join(MODES)})")
    modes = [m for m in MODES if m in asked | {"untraced", "official"}]
    base_path = ""
    if any(m.startswith("djtrace-base") for m in modes):
        if args.callgrind:
            parser.error("--callgrind counts this checkout's build only: no djtrace-base")
        base_path = stacks.base_build()
    if args.callgrind and args.db != "sqlite":
        parser.error("--callgrind counts the page on SQLite only")
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py")],
                            stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline())
    sink2 = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py")],
                             stdout=subprocess.PIPE, text=True)
    port2 = int(sink2.stdout.readline())
    if args.callgrind:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                env = _env(os.path.join(tmp, "bench.sqlite3"),
                           f"http://127.0.0.1:{port}/v1/traces")
                env["BENCH_OFFICIAL_ENDPOINT"] = f"http://127.0.0.1:{port2}/v1/traces"
                _prepare_db(env)
                run_callgrind(env, min(args.requests, 300), max(1, args.callgrind_runs),
                              args.cache_sim, args.cold, args.own, args.sampled_out)
        finally:
            for s in (sink, sink2):
                s.terminate()
                s.wait()
        return
    postgres = args.db == "postgres"
    started: list[str] = []
    try:
        if postgres:
            started = services.ensure({"postgres": PG_PORT})
            _pg_database(create=True)
        with tempfile.TemporaryDirectory() as tmp:
            env = _env(os.path.join(tmp, "bench.sqlite3"), f"http://127.0.0.1:{port}/v1/traces",
                       postgres)
            env["BENCH_OFFICIAL_ENDPOINT"] = f"http://127.0.0.1:{port2}/v1/traces"
            if args.no_export:
                env["DJTRACE_TEST_EXPORTERS"] = env["OTEL_TRACES_EXPORTER"] = "none"
            _prepare_db(env)
            slices, spans = run_interleaved(env, args.rounds, args.requests, args.processes,
                                            modes, base_path)
    finally:
        for s in (sink, sink2):
            s.terminate()
            s.wait()
        if postgres and services.reachable(PG_PORT):
            _pg_database(create=False)
        services.stop(started)
    print_clock(slices, spans, args, modes)


def run_interleaved(env: dict, rounds: int, requests: int, processes: int, modes: list[str],
                    base_path: str = ""
                    ) -> tuple[dict[str, list[list[dict]]], dict[str, float | None]]:
    """Every configuration in `processes` warm processes of its own (process p: hash seed p, p KB
    more environment, the same layouts for every configuration), all started before the first
    measurement. Each round, every process in turn (shuffled) serves one slice of `requests`
    requests while the others wait; returns each configuration's slices per round."""
    procs: dict[tuple[str, int], subprocess.Popen] = {}
    try:
        for layout in range(processes):
            for mode in modes:
                mode_env = {**env, "PYTHONHASHSEED": str(layout),
                            "DJTRACE_BENCH_LAYOUT": "x" * (1024 * layout)}
                if mode.startswith("djtrace-base"):
                    mode_env["PYTHONPATH"] = os.pathsep.join([base_path, env["PYTHONPATH"]])
                proc = subprocess.Popen(
                    [sys.executable, "-c", WORKLOAD, mode.replace("djtrace-base", "djtrace")],
                    env=mode_env,
                    cwd=str(PROJECT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                procs[(mode, layout)] = proc
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"the {mode} process (layout {layout}) did not start")
        slices: dict[str, list[list[dict]]] = {m: [[] for _ in range(rounds)] for m in modes}
        spans: dict[str, float | None] = {}
        order = list(procs)
        shuffle = random.Random(0).shuffle
        for r in range(rounds):
            shuffle(order)
            for mode, layout in order:
                proc = procs[(mode, layout)]
                proc.stdin.write(f"{requests}\n")
                proc.stdin.flush()
                row = json.loads(proc.stdout.readline())
                slices[mode][r].append(row)
        for mode in modes:
            # Spans started per request over every slice (one slice's would tell little at 10%).
            counts = [s["spans"] for rows in slices[mode] for s in rows]
            spans[mode] = None if None in counts else statistics.fmean(counts)
        return slices, spans
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.stdin.write("0\n")
                proc.stdin.flush()
        for proc in procs.values():
            proc.wait()


CLOCK_MEASURES = (
    ("cpu", "CPU time of the request thread (the request's latency when nothing else runs)"),
    ("process", "CPU time of the whole process, export included (the slice's spans are "
                "flushed before it stops): what a server pays per request"),
    ("other", "CPU time of the whole process less the request thread's within the slice: the "
              "export thread, and the request thread's flush and span count after it. Its "
              "spread is microseconds where the two above spread by hundreds, so it resolves a "
              "change to the export path"),
)


def print_clock(slices: dict[str, list[list[dict]]], spans: dict[str, float | None],
                args: argparse.Namespace, modes: list[str]) -> None:
    rounds = len(slices["untraced"])
    print(f"# CPython {platform.python_version()}, {os.cpu_count()} CPUs, {args.db}; "
          f"{args.processes} "
          f"processes per configuration, {rounds} rounds of one slice of {args.requests} "
          "requests per process, interleaved in a shuffled order")
    print("# per request, median and 10th percentile over every slice; x official: added over "
          "untraced, against the official stack's added, of the medians and of the 10th "
          "percentiles; paired: that ratio within each round (the slices of a round run within "
          "a second or two of each other), median [25th - 75th percentile] over rounds; speed: "
          "untraced's median over this one's (of the whole process: the throughput of a "
          "CPU-bound server, such as a Gunicorn sync worker with a queue, against untraced)")
    for key, meaning in CLOCK_MEASURES:
        print(f"\n## {key}: {meaning}")
        print(f"{'configuration':<14} {'us p10 / median':>16} {'added':>8}"
              f" {'x official med / p10':>21} {'paired':>22} {'speed':>6} {'spans/req':>10}")
        value = partial(_measure, key)
        every = {m: sorted(value(s) for r in slices[m] for s in r) for m in modes}
        per_round = {m: [statistics.fmean(value(s) for s in r) for r in slices[m]] for m in modes}
        base, official = every["untraced"], every["official"]
        digits = 1 if key == "other" else 0  # a few microseconds: tenths matter
        for mode in modes:
            values = every[mode]
            added = statistics.median(values) - statistics.median(base)
            ratio = paired = "-"
            if mode not in ("untraced", "official"):
                low = (_q(values, 0.1) - _q(base, 0.1)) / (_q(official, 0.1) - _q(base, 0.1))
                ratio = (f"{added / (statistics.median(official) - statistics.median(base)):.3f}"
                         f" / {low:.3f}")
                ratios = sorted((m - u) / (o - u) for m, u, o in zip(
                    per_round[mode], per_round["untraced"], per_round["official"], strict=True)
                    if o > u)
                if ratios:
                    paired = (f"{statistics.median(ratios):.3f} [{_q(ratios, 0.25):.3f} - "
                              f"{_q(ratios, 0.75):.3f}]")
            span_count = "-" if spans.get(mode) is None else f"{spans[mode]:.1f}"
            speed = ("-" if key == "other"
                     else f"{statistics.median(base) / statistics.median(values):.3f}")
            print(f"{mode:<14} {_q(values, 0.1):>7.{digits}f} /"
                  f"{statistics.median(values):>7.{digits}f}"
                  f" {'-' if mode == 'untraced' else f'{added:+.{digits}f}':>8} {ratio:>21}"
                  f" {paired:>22} {speed:>6} {span_count:>10}")
        for mine, theirs in (("djtrace", "djtrace-base"), ("djtrace-10", "djtrace-base-10")):
            if mine not in modes or theirs not in modes:
                continue
            diffs = sorted(m - b for m, b in zip(per_round[mine], per_round[theirs], strict=True))
            print(f"{mine} minus {theirs}, per round: median "
                  f"{statistics.median(diffs):+.1f} us [{_q(diffs, 0.25):+.1f} - "
                  f"{_q(diffs, 0.75):+.1f}], mean {statistics.fmean(diffs):+.1f} us "
                  f"({len(diffs)} rounds)")


def _measure(key: str, row: dict) -> float:
    """A slice's figure for `key`; "other" is derived: the process's less the request thread's."""
    return row["process"] - row["cpu"] if key == "other" else row[key]


def _q(values: list[float], p: float) -> float:
    """The p-quantile of sorted `values` (nearest rank below)."""
    return values[min(len(values) - 1, int(p * len(values)))]


if __name__ == "__main__":
    main()
