"""Per-span cost through the OpenTelemetry API: djtrace versus opentelemetry-sdk, same run.

Each configuration runs in its own process, interleaved (A B A B ...), several rounds; every
figure is min / median / max over rounds. Both SDKs use a batch span processor and an
OTLP/HTTP exporter aimed at a local sink process.

    .venv/bin/python bench/spans.py [--rounds 5] [--spans 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap

WORKLOAD = textwrap.dedent("""
    import json, os, sys, time, tracemalloc
    sdk, sampled, n, endpoint = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
    from opentelemetry import trace
    if sdk == "djtrace":
        from djtrace.sdk import TracerProvider, BatchSpanProcessor
        from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter
        from djtrace.sdk.trace.sampling import ALWAYS_ON, ALWAYS_OFF
    else:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ALWAYS_OFF
    provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF)
    # A queue large enough that nothing is dropped: the cost of every span is measured.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint),
                                                   max_queue_size=n + 1024))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")

    def run(count):
        for _ in range(count):
            with tracer.start_as_current_span("x") as s:
                s.set_attribute("http.request.method", "GET")
                s.set_attribute("http.response.status_code", 200)
                s.set_attribute("db.query.text", "SELECT 1")

    run(2000)
    provider.force_flush()
    t0 = time.perf_counter()
    run(n)
    t1 = time.perf_counter()
    provider.force_flush()
    t2 = time.perf_counter()
    # Python heap held per queued span: spans created while the exporter cannot drain.
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    m = 2000
    run(m)
    held = (tracemalloc.get_traced_memory()[0] - base) / m
    tracemalloc.stop()
    provider.shutdown()
    print(json.dumps({"calling_us": (t1 - t0) / n * 1e6, "end_to_end_us": (t2 - t0) / n * 1e6,
                      "heap_bytes": held}))
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=50000)
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sink = subprocess.Popen([sys.executable, os.path.join(here, "sink.py")], stdout=subprocess.PIPE,
                            text=True)
    port = int(sink.stdout.readline())
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    configs = [("djtrace", "1"), ("otel-sdk", "1"), ("djtrace", "0"), ("otel-sdk", "0")]
    results: dict = {c: [] for c in configs}
    try:
        for _ in range(args.rounds):
            for sdk, sampled in configs:
                out = subprocess.run(
                    [sys.executable, "-c", WORKLOAD, sdk, sampled, str(args.spans), endpoint],
                    capture_output=True, text=True, check=True,
                )
                results[(sdk, sampled)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        sink.terminate()

    def mmm(values):
        return min(values), statistics.median(values), max(values)

    print("# Per span: `with start_as_current_span(...)` + 3 set_attribute, batch + OTLP/HTTP")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; "
          f"{args.rounds} rounds x {args.spans} spans, interleaved\n")
    print("| configuration | calling thread us/span (min/med/max) | end to end us/span (med) | "
          "Python heap per queued span |")
    print("|---|---|---|---|")
    med = {}
    for (sdk, sampled), runs in results.items():
        lo, mid, hi = mmm([r["calling_us"] for r in runs])
        e2e = statistics.median(r["end_to_end_us"] for r in runs)
        heap = statistics.median(r["heap_bytes"] for r in runs)
        med[(sdk, sampled)] = (mid, e2e)
        label = f"{sdk}, {'recorded' if sampled == '1' else 'not sampled'}"
        print(f"| {label} | {lo:.3f} / {mid:.3f} / {hi:.3f} | {e2e:.3f} | {heap:.0f} B |")
    for sampled, label in (("1", "recorded"), ("0", "not sampled")):
        dj, ot = med[("djtrace", sampled)], med[("otel-sdk", sampled)]
        print(f"\n{label}: djtrace is {ot[0] / dj[0]:.1f}x cheaper on the calling thread, "
              f"{ot[1] / dj[1]:.1f}x end to end")


if __name__ == "__main__":
    main()
