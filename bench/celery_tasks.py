"""Per-task cost of tracing Celery: untraced, the official CeleryInstrumentor on
opentelemetry-sdk, and djtrace, in the same run.

Each configuration runs in processes of its own, interleaved (A B C A B C ...), several rounds;
figures are min / median / max over rounds, in µs per task, and the overhead of each tracer over
the untraced run. Both tracers record every span (always on) through a batch span processor
and an OTLP/HTTP exporter aimed at a local sink process.

- in-process: one process sends the task (`apply_async`, kombu's in-memory transport) and runs
  it from the received message as the solo pool does (`Request.execute`): every per-task
  cost of a real send and a real run, without a broker's or a poller's noise.
- redis + solo worker: the real thing; a producer process sends N tasks to the real Redis and a
  `celery worker -P solo` process runs them; the figure is the CPU time both processes spend
  (worker: utime + stime from /proc; producer: process_time) from the first send to the last
  task's result, per task. CPU time rather than wall time: on a shared machine the wall time of
  three processes and a broker competing for the cores says more about the neighbours.

    .venv/bin/python bench/celery_tasks.py [--rounds 5] [--tasks 5000] [--broker-tasks 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

MODES = ("untraced", "otel-sdk", "djtrace")

# The app of both variants; the tracing set-up is chosen by BENCH_MODE.
APP = textwrap.dedent("""
    import os
    from celery import Celery

    mode = os.environ["BENCH_MODE"]
    endpoint = os.environ["BENCH_ENDPOINT"]
    if mode == "otel-sdk":
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint),
                                                       max_queue_size=1 << 16))
        trace.set_tracer_provider(provider)
        CeleryInstrumentor().instrument()
    elif mode == "djtrace":
        from opentelemetry import trace
        from djtrace.sdk import BatchSpanProcessor, TracerProvider
        from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter
        from djtrace.integrations.celery import install

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint),
                                                       max_queue_size=1 << 16))
        trace.set_tracer_provider(provider)
        install()
    else:
        provider = None

    app = Celery("bench_app", broker=os.environ["BENCH_BROKER"],
                 backend=os.environ.get("BENCH_BACKEND") or None)
    app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=64,
                    broker_connection_retry_on_startup=True,
                    task_default_queue=os.environ.get("BENCH_QUEUE", "celery"))

    @app.task
    def add(x, y):
        return x + y

    @app.task(ignore_result=False)
    def done():
        return True
""")

IN_PROCESS = textwrap.dedent("""
    import json, sys, time
    from bench_app import add, app, provider
    from celery.worker.request import Request

    n = int(sys.argv[1])
    connection = app.connection_for_write()
    queue = connection.SimpleQueue("celery", no_ack=True)

    def run(count):
        for i in range(count):
            add.apply_async((i, 1))
            message = queue.get(block=False)
            Request(message, app=app).execute()

    run(500)
    if provider is not None:
        provider.force_flush()
    t0 = time.perf_counter()
    run(n)
    t1 = time.perf_counter()
    if provider is not None:
        provider.force_flush()
    t2 = time.perf_counter()
    print(json.dumps({"us": (t1 - t0) / n * 1e6, "end_to_end_us": (t2 - t0) / n * 1e6}))
""")

BROKER_PRODUCER = textwrap.dedent("""
    import json, os, sys, time
    from bench_app import add, app, done, provider

    n = int(sys.argv[1])
    worker_stat = f"/proc/{os.environ['BENCH_WORKER_PID']}/stat"
    tick = os.sysconf("SC_CLK_TCK")

    def worker_cpu():
        fields = open(worker_stat).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    done.apply_async().get(timeout=60)  # the worker is up and warm
    w0, p0, t0 = worker_cpu(), time.process_time(), time.perf_counter()
    for i in range(n):
        add.apply_async((i, 1))
    done.apply_async().get(timeout=300)
    w1, p1, t1 = worker_cpu(), time.process_time(), time.perf_counter()
    if provider is not None:
        provider.force_flush()
    print(json.dumps({"wall_us": (t1 - t0) / n * 1e6, "us": ((w1 - w0) + (p1 - p0)) / n * 1e6}))
""")


def run_json(argv, env, cwd) -> dict:
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(values: list) -> str:
    return f"{min(values):8.1f} / {statistics.median(values):8.1f} / {max(values):8.1f}"


def table(title: str, results: dict) -> None:
    base = statistics.median(results["untraced"])
    print(f"\n{title}")
    print("| configuration | µs/task (min / median / max) | added µs/task (median) | ratio |")
    print("|---|---|---|---|")
    for mode in MODES:
        med = statistics.median(results[mode])
        added = med - base
        print(f"| {mode} | {summary(results[mode])} | {added:8.1f} | {med / base:5.2f}x |")
    official = statistics.median(results["otel-sdk"]) - base
    ours = statistics.median(results["djtrace"]) - base
    if official > 0:
        print(f"\ndjtrace adds {ours / official:.2f} of what the official stack adds.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--broker-tasks", type=int, default=2000)
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    work = tempfile.mkdtemp(prefix="djtrace-bench-celery-")
    with open(os.path.join(work, "bench_app.py"), "w") as f:
        f.write(APP)
    sink = subprocess.Popen([sys.executable, os.path.join(here, "sink.py")],
                            stdout=subprocess.PIPE, text=True)
    endpoint = f"http://127.0.0.1:{int(sink.stdout.readline())}/v1/traces"
    base_env = {**os.environ, "PYTHONPATH": work, "BENCH_ENDPOINT": endpoint}
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; rounds={args.rounds}")
    try:
        results: dict = {m: [] for m in MODES}
        for _ in range(0 if args.skip_in_process else args.rounds):
            for mode in MODES:
                env = {**base_env, "BENCH_MODE": mode, "BENCH_BROKER": "memory://"}
                script = os.path.join(work, "in_process.py")
                with open(script, "w") as f:
                    f.write(IN_PROCESS)
                results[mode].append(run_json([sys.executable, script, str(args.tasks)], env,
                                              work)["us"])
        if not args.skip_in_process:
            table(f"in-process (send + run from the message, {args.tasks} tasks per round)",
                  results)
        if not args.skip_broker:
            broker_rounds(args, root, work, base_env)
    finally:
        sink.terminate()
        shutil.rmtree(work, ignore_errors=True)


def broker_rounds(args, root: str, work: str, base_env: dict) -> None:
    sys.path.insert(0, os.path.join(root, "tests"))
    from support import services
    from support.spans import redis_running

    started = not redis_running(services.REDIS_PORT)
    services.start("redis")
    script = os.path.join(work, "producer.py")
    with open(script, "w") as f:
        f.write(BROKER_PRODUCER)
    results: dict = {m: [] for m in MODES}
    try:
        for r in range(args.rounds):
            for mode in MODES:
                queue = f"bench-{mode}-{r}-{os.getpid()}"
                env = {**base_env, "BENCH_MODE": mode, "BENCH_BROKER": services.redis_url(7),
                       "BENCH_BACKEND": services.redis_url(7), "BENCH_QUEUE": queue}
                worker = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "bench_app", "worker", "-P", "solo",
                     "-Q", queue, "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                     "--without-heartbeat"], env=env, cwd=work, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                try:
                    env["BENCH_WORKER_PID"] = str(worker.pid)
                    results[mode].append(run_json([sys.executable, script,
                                                   str(args.broker_tasks)], env, work)["us"])
                finally:
                    worker.terminate()
                    worker.wait(60)
        table(f"redis broker + solo worker process: CPU time of worker and producer "
              f"({args.broker_tasks} tasks per round)", results)
    finally:
        if started:
            services.stop("redis")


if __name__ == "__main__":
    main()
