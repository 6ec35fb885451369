"""Micro workloads, each configuration in processes of its own, interleaved over rounds:

- spans: per span through the OpenTelemetry API, recorded and not sampled (bench/spans.py's
  workload, imported), and the API with no SDK installed (untraced);
- (the ORM query hook is measured in the in-process workload's processes, harness/inproc.py);
- sql: djtrace's SQL fingerprint, cold (obfuscator) and cached (bench/native/sql_bench.cc);
- pii: djtrace's native redaction engine (bench/native/pii_bench.cc) next to the guide's
  three-regex processor on bench/pii.py's corpus;
- encode: djtrace's native OTLP encoder (bench/native/encode_bench.cc) next to
  opentelemetry-sdk's Python encoder (bench/encode.py's official()).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(ROOT, "build", "bench")

if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import encode as encode_bench  # noqa: E402  bench/encode.py
import pii as pii_bench  # noqa: E402  bench/pii.py
import spans as spans_bench  # noqa: E402  bench/spans.py

# The same loop as bench/spans.py's, on the API alone: what the instrumented code costs with no
# SDK installed (no-op tracer).
UNTRACED_SPANS = textwrap.dedent("""
    import json, sys, time
    n = int(sys.argv[3])
    from opentelemetry import trace
    tracer = trace.get_tracer("bench")
    def run(count):
        for _ in range(count):
            with tracer.start_as_current_span("x") as s:
                s.set_attribute("http.request.method", "GET")
                s.set_attribute("http.response.status_code", 200)
                s.set_attribute("db.query.text", "SELECT 1")
    run(2000)
    t0 = time.perf_counter()
    run(n)
    t1 = time.perf_counter()
    print(json.dumps({"calling_us": (t1 - t0) / n * 1e6, "end_to_end_us": (t1 - t0) / n * 1e6,
                      "heap_bytes": 0}))
""")

SPAN_CONFIGS = {
    "untraced": None,
    "otel-100": ("otel-sdk", "1"),
    "otel-0": ("otel-sdk", "0"),
    "djtrace-100": ("djtrace", "1"),
    "djtrace-0": ("djtrace", "0"),
}

def _json_out(argv, env=None, cwd=None, timeout=600) -> dict:
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_native() -> None:
    """Builds the native benchmarks (Release) in build/bench, as bench/encode.py does."""
    subprocess.run(["cmake", "-S", ROOT, "-B", BUILD, "-G", "Ninja", "-DDJTRACE_BUILD_BENCH=ON",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", BUILD, "--target", "encode_bench", "pii_bench",
                    "sql_bench"], check=True, capture_output=True)


def spans(rounds: int, n: int, endpoint: str, log) -> dict:
    results: dict = {c: [] for c in SPAN_CONFIGS}
    for r in range(rounds):
        for config, args in SPAN_CONFIGS.items():
            script = UNTRACED_SPANS if args is None else spans_bench.WORKLOAD
            sdk, sampled = args or ("none", "0")
            results[config].append(_json_out([sys.executable, "-c", script, sdk, sampled, str(n),
                                               endpoint]))
        log(f"micro spans: round {r + 1}/{rounds}")
    return results


def sql(rounds: int, seconds: float) -> list:
    return [_json_out([os.path.join(BUILD, "sql_bench"), str(seconds)]) for _ in range(rounds)]


def _guide_rates(values, seconds: float) -> dict:
    """bench/pii.py's guide processor (guide_mask) on its corpus, in CPU time of this thread."""
    total = sum(len(v.encode()) for _, v in values)
    done, start = 0, time.thread_time()
    while time.thread_time() - start < seconds:
        for _, v in values:
            pii_bench.guide_mask(v)
        done += total
    mb = done / (time.thread_time() - start) / 1e6
    spans_ = [values[i:i + 10] for i in range(0, len(values) - 10, 10)][:1000]
    n, start = 0, time.thread_time()
    while time.thread_time() - start < seconds:
        for attrs in spans_:
            pii_bench.guide_mask("GET api/orders/<int:pk>/")
            {k: pii_bench.guide_mask(v) for k, v in attrs}
        n += len(spans_)
    return {"mb_per_s": mb, "ns_per_span": (time.thread_time() - start) / n * 1e9}


def pii(rounds: int, profiles: tuple, seconds: float, log) -> dict:
    values = pii_bench.corpus()
    os.makedirs(BUILD, exist_ok=True)
    path = os.path.join(BUILD, "pii_corpus.tsv")
    with open(path, "w") as f:
        for k, v in values:
            f.write(f"{k}\t{v.replace(chr(10), ' | ')}\n")
    results: dict = {f"djtrace-{p}": [] for p in profiles}
    results["guide-regex"] = []
    for r in range(rounds):
        for p in profiles:
            results[f"djtrace-{p}"].append(_json_out([os.path.join(BUILD, "pii_bench"), path, p,
                                                       str(seconds)]))
        results["guide-regex"].append(_guide_rates(values, seconds))
        log(f"micro pii: round {r + 1}/{rounds}")
    return results


def encode(rounds: int, seconds: float, log) -> dict:
    results: dict = {"djtrace": [], "official": []}
    for r in range(rounds):
        results["djtrace"].append(_json_out([os.path.join(BUILD, "encode_bench"), str(seconds)]))
        results["official"].append({"protobuf_spans_per_s": encode_bench.official()})
        log(f"micro encode: round {r + 1}/{rounds}")
    return results
