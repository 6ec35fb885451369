"""Gunicorn throughput in short interleaved slices: issue 3's goal that djtrace keeps at least
0.97x of the untraced throughput under Gunicorn, measured so that this machine's drift cancels.

bench/run.py's macro section gives each configuration runs of 10 seconds in turn. This
machine's speed drifts by a third within seconds, and those runs spread by up to 45%. Here the
same servers (one Gunicorn per configuration, the guide's 2 x cores + 1 sync workers, the order
service on PostgreSQL and Redis, the endpoint mix and local OTLP sinks of run.py) all start
first. Then, round after round, each server in a shuffled order serves one slice of --requests
requests from --concurrency keep-alive connections while the others idle, and idles itself
--settle seconds after it, so that the spans of its slice are exported (every stack's batch
processor waits at most OTEL_BSP_SCHEDULE_DELAY=100 ms here) before the next server's slice.

--server uvicorn runs the same slices under ASGI instead: one uvicorn process per configuration
(Django runs a sync view in one thread per process there anyway), with CONN_MAX_AGE=0 as
Django advises for ASGI without a connection pool, as bench/run.py's uvicorn runs do.

--page bench serves, instead of the order service's mix, issue 3's page: the test project's
/bench/ (bench/django_requests.py's page: six queries, a template with an include, two cache
calls, ten middleware), here on the run's PostgreSQL and with Django's Redis cache, every
request the same.

Per slice: throughput (requests over the slice's wall time) and the server's CPU per request
(user + system time of its process tree, from the slice's start to the end of its settle time:
export included). Reported: 10th percentile and median of each, their ratio to untraced by
medians, and the ratio paired within each round (median and quartiles). "speed" is untraced's
CPU per request over the configuration's: the throughput a CPU-bound server keeps. "other
threads": the CPU spent outside the processes' main threads (a tracer's export thread;
Gunicorn's sync workers and uvicorn serve on the main thread), over the whole run.

    .venv/bin/python bench/gunicorn_slices.py [--rounds 40] [--requests 200] [--concurrency 10]
        [--settle 0.4] [--configs untraced,otel-100,djtrace-100] [--page mix|bench]
        [--server gunicorn|uvicorn]

Two builds of djtrace side by side: install the other one into a directory of its own
(`git worktree add /tmp/base <commit> && cd /tmp/base && pip install --no-deps
--no-build-isolation --target /tmp/base-pkg .`), then `BENCH_DJTRACE_BASE=/tmp/base-pkg ...
--configs untraced,djtrace-base-100,djtrace-100`.

scripts/bench.sh installs what this needs; run alone, this starts PostgreSQL and Redis itself
(scripts/services.sh) and stops what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import django_requests  # noqa: E402  (the /bench/ page's project and its rows)
import run  # noqa: E402  (its Session: the app, mix, sinks and environments of the macro runs)
from harness import loadgen, macro, procs, services  # noqa: E402

PAGE_PROJECT = str(django_requests.PROJECT)


def choose_bench_page(session: run.Session) -> None:
    """Issue 3's page as the target: the test project's /bench/, its database made afresh on
    the run's PostgreSQL with bench/django_requests.py's tables and rows."""
    session.app_path = PAGE_PROJECT
    session.settings = "project.settings"
    session.target = "tests/integrations/django, GET /bench/ (project.settings)"
    env = session.env_of("untraced", endpoint="http://127.0.0.1:9")
    fresh = "from harness.prepare import fresh_database; fresh_database()"
    try:
        subprocess.run([sys.executable, "-c", fresh], env=env, cwd=PAGE_PROJECT, check=True,
                       capture_output=True, text=True, timeout=600)
        django_requests._prepare_db(env)
    except subprocess.SubprocessError as exc:
        raise SystemExit(f"gunicorn_slices: preparing /bench/ failed: {exc}") from exc
    session.mix = {"requests": [{"label": "bench", "method": "GET", "path": "/bench/"}]}
    session.mix_path = os.path.join(session.tmp, "mix.json")
    with open(session.mix_path, "w") as f:
        json.dump(session.mix, f)


def serve_slice(server: macro.Server, spec: dict, requests: int, concurrency: int,
                settle: float) -> dict:
    """One slice of `requests` requests to `server`, then `settle` seconds idle."""
    pids = server.pids()
    target = SimpleNamespace(host="127.0.0.1", port=server.port)
    quota = max(1, requests // concurrency)
    cpu0 = procs.cpu_seconds(pids)
    threads0 = procs.thread_cpu_seconds(pids)
    t0 = time.perf_counter()
    workers = [loadgen.Worker(k, target, spec, t0, t0, t0 + 600.0, quota)
               for k in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    time.sleep(settle)
    cpu = procs.cpu_seconds(pids) - cpu0
    threads = procs.thread_cpu_seconds(pids) - threads0
    done = sum(w.completed for w in workers)
    latencies = sorted(x for w in workers for x in w.latencies)
    return {
        "throughput": done / wall if wall > 0 else 0.0,
        "cpu_ms": cpu / done * 1e3 if done else float("nan"),
        "threads_s": threads,
        "p50_us": latencies[len(latencies) // 2] if latencies else 0,
        "p99_us": latencies[int(len(latencies) * 0.99)] if latencies else 0,
        "errors": sum(w.errors for w in workers),
        "served": done,
    }


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(rows: dict[str, list[dict]], configs: list[str]) -> str:
    base = "untraced"
    rounds = len(rows[base])
    med = {c: {k: statistics.median(r[k] for r in rows[c])
               for k in ("throughput", "cpu_ms", "p50_us", "p99_us")} for c in configs}
    lines = [
        "| configuration | req/s, 10th pct / median | x untraced (medians) | paired [quartiles] "
        "| CPU ms/request, median | other threads µs/request | speed (CPU) | paired [quartiles] "
        "| p50 / p99 µs (medians) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in configs:
        tp = [r["throughput"] for r in rows[c]]
        errors = sum(r["errors"] for r in rows[c])
        threads_us = sum(r["threads_s"] for r in rows[c]) / sum(r["served"] for r in rows[c]) * 1e6
        if c == base:
            paired_tp = paired_speed = "–"
            x_tp = speed = "1"
        else:
            pt = [rows[c][i]["throughput"] / rows[base][i]["throughput"] for i in range(rounds)]
            ps = [rows[base][i]["cpu_ms"] / rows[c][i]["cpu_ms"] for i in range(rounds)]
            paired_tp = (f"{statistics.median(pt):.3f} [{quantile(pt, 0.25):.3f} - "
                         f"{quantile(pt, 0.75):.3f}]")
            paired_speed = (f"{statistics.median(ps):.3f} [{quantile(ps, 0.25):.3f} - "
                            f"{quantile(ps, 0.75):.3f}]")
            x_tp = f"{med[c]['throughput'] / med[base]['throughput']:.3f}"
            speed = f"{med[base]['cpu_ms'] / med[c]['cpu_ms']:.3f}"
        lines.append(
            f"| {c} | {quantile(tp, 0.1):,.0f} / {med[c]['throughput']:,.0f} | {x_tp} | "
            f"{paired_tp} | {med[c]['cpu_ms']:.2f} | {threads_us:,.0f} | {speed} | "
            f"{paired_speed} | "
            f"{med[c]['p50_us']:,.0f} / {med[c]['p99_us']:,.0f} | {errors} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=200, help="requests per slice")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="connections (default: 2 x workers, as run.py)")
    parser.add_argument("--settle", type=float, default=0.4,
                        help="seconds each server idles after its slice, its export included")
    parser.add_argument("--configs", default="untraced,otel-100,djtrace-100")
    parser.add_argument("--server", choices=("gunicorn", "uvicorn"), default="gunicorn")
    parser.add_argument("--page", choices=("mix", "bench"), default="mix",
                        help="the order service's endpoint mix, or issue 3's /bench/ page")
    args = parser.parse_args()
    configs = args.configs.split(",")
    if configs[0] != "untraced":
        parser.error("--configs: the first must be untraced (the ratios' base)")
    known = run.stacks.CONFIGS + run.stacks.OPTIONAL_CONFIGS
    unknown = [c for c in configs if c not in known]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)} (known: "
                     f"{', '.join(known)})")
    if any(c.startswith("djtrace-base-") for c in configs):
        run.stacks.base_build()  # stops here, before any server starts, when it is not set

    session = run.Session(argparse.Namespace(quick=False, rounds=0, concurrency=0, only="",
                                             command=""))
    workers = session.p["workers"] if args.server == "gunicorn" else 1
    concurrency = args.concurrency or session.p["concurrency"]
    started = services.ensure({"postgres": run.PG_PORT, "redis": run.REDIS_PORT})
    servers: list[macro.Server] = []
    try:
        for c in configs:
            session.sinks[c] = run.Sink()
        if args.page == "bench":
            choose_bench_page(session)
        else:
            session.choose_target()
        log_dir = os.path.join(session.tmp, "logs")
        os.makedirs(log_dir, exist_ok=True)
        for c in configs:
            env = session.env_of(c)
            env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
            server = macro.Server(args.server, c, workers, env, log_dir)
            if args.page == "bench":
                server.ready_path = "/bench/"  # the test project has no /health/
            servers.append(server)
        run.log(f"{args.server}: starting {len(servers)} servers of {workers} workers")
        macro.start_all(servers, timeout=180)
        spec = session.mix
        rows: dict[str, list[dict]] = {c: [] for c in configs}
        rng = random.Random(7)
        sent: dict[str, int] = {}
        for r in range(-2, args.rounds):  # two rounds of warm-up, not kept
            if r == 0:
                sent = {c: session.sinks[c].received()["bytes"] for c in configs}
            order = list(servers)
            rng.shuffle(order)
            for s in order:
                row = serve_slice(s, spec, args.requests, concurrency, args.settle)
                if not row["served"]:
                    raise SystemExit(f"gunicorn_slices: {s.config} served no request in a "
                                     f"slice ({row['errors']} errors); its log: {s.tail()}")
                if r >= 0:
                    rows[s.config].append(row)
            if r >= 0 and (r + 1) % 10 == 0:
                run.log(f"round {r + 1}/{args.rounds}")
        kind = (f"Gunicorn, {workers} sync workers" if args.server == "gunicorn"
                else "uvicorn, one process")
        print(f"{kind} per server, {concurrency} connections, "
              f"{args.rounds} rounds of {args.requests} requests per server, settle "
              f"{args.settle} s; {session.target}; {session.mix_text()}")
        print(f"machine: {procs.machine()}")
        print(report(rows, configs))
        exported = []
        for c in configs[1:]:
            served = sum(r["served"] for r in rows[c])
            kb = (session.sinks[c].received()["bytes"] - sent[c]) / 1024 / served
            exported.append(f"{c} {kb:.2f} KB")
        print("OTLP received by the sinks per request: " + ", ".join(exported))
    finally:
        macro.stop_all(servers)
        for s in session.sinks.values():
            s.stop()
        session.cleanup_services_data()
        services.stop(started)
        shutil.rmtree(session.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
