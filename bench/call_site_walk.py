"""Cost of the query-source frame walk (`_native.db_call_site()`) under a deep library stack.

Each iteration descends through DEPTH fresh frames of "library" code (compiled with a file name
under a skipped prefix) and calls the probe at the bottom, so the walk visits DEPTH library
frames and stops at this file's frame, as a query does under the ORM. The frames are new every
time, as in a real query: a walker that materialises frame objects pays for them on every call.

Count instructions with callgrind, at two iteration counts (the slope drops start-up), for the
walk and for a baseline whose probe is a trivial builtin:

    for mode in walk baseline; do for n in 10000 20000; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cs.$mode.$n.out \\
        .venv/bin/python bench/call_site_walk.py --mode $mode --iterations $n --depth 20
    done; done
    # Ir per iteration = (Ir at 20000 - Ir at 10000) / 10000; walk - baseline = instructions
    # per db_call_site() (FindCallSite, the call and its result tuple, the frame objects' frees)

Without valgrind it prints the wall time per iteration of each mode.
"""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

from djtrace import _native

LIB_PREFIX = "/djtrace-bench-lib/"
LIB_SOURCE = """
def descend(n, probe):
    if n == 0:
        return probe()
    return descend(n - 1, probe)
"""


def run(descend, depth: int, probe, iterations: int) -> None:
    # The application frame the walk stops at: small, like a view's (the line table is scanned
    # from the start of the function up to the current instruction).
    for _ in range(iterations):
        descend(depth, probe)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--mode", choices=("walk", "baseline", "both"), default="both")
    args = parser.parse_args()

    _native.db_configure(
        enabled=True, suppress_var=None, otel_suppress_key=None, relation_var=None,
        comment_var=None, collector_var=None, root_var=None, trace_module=trace,
        resolve_tracer=lambda provider: None, fallback=None, on_finding=None,
        client_kind=trace.SpanKind.CLIENT, skip_prefixes=[LIB_PREFIX], query_source=True)
    lib: dict = {}
    exec(compile(LIB_SOURCE, LIB_PREFIX + "deep.py", "exec"), lib)
    descend = lib["descend"]
    # descend(depth) runs depth + 1 library frames.
    depth = args.depth - 1

    site = descend(depth, _native.db_call_site)
    assert site is not None and site[0] == __file__, site

    # The baseline probe is a C call of the same shape without the walk: tuple() returns the
    # empty tuple.
    probes = {"walk": _native.db_call_site, "baseline": tuple}
    modes = ("walk", "baseline") if args.mode == "both" else (args.mode,)
    for mode in modes:
        start = time.perf_counter()
        run(descend, depth, probes[mode], args.iterations)
        elapsed = time.perf_counter() - start
        print(f"{mode}: depth {args.depth}: {elapsed / args.iterations * 1e9:.0f} ns/iteration")


if __name__ == "__main__":
    main()
