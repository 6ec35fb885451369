"""The endpoint mix in-process, through Django's test client: no server, no sockets, so the
CPU time per request is what the app and its tracer cost, nearly untouched by the machine's
other load. Each configuration runs in a process of its own, interleaved over rounds.

Per run: CPU time of the request thread per request (what the request path pays), CPU time of
the whole process per request including the tracer's export thread (batching, encoding,
sending; the tracer is flushed inside the measured window), and wall time per request.

The same process then measures the ORM query hook: CPU time of the thread per
`Order.objects.filter(pk=...).first()` on PostgreSQL, six per root span (the app's Order model),
so that one Django start-up serves both workloads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

WORKLOAD = textwrap.dedent("""
    import json, sys, time
    n, mix_path = int(sys.argv[1]), sys.argv[2]
    from harness import stacks
    from harness.inproc import mix_session
    requests, send = mix_session(mix_path)

    def run(count):
        bad = 0
        for i in range(count):
            resp = send(requests[i % len(requests)], i // len(requests))
            bad += resp.status_code >= 400
        return bad

    run(min(60, max(30, n // 5)))
    stacks.flush()
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    bad = run(n)
    c1 = time.thread_time()
    stacks.flush()
    t1, p1 = time.perf_counter(), time.process_time()
    out = {"thread_cpu_us": (c1 - c0) / n * 1e6, "process_cpu_us": (p1 - p0) / n * 1e6,
           "wall_us": (t1 - t0) / n * 1e6, "errors": bad}

    q = int(sys.argv[3])
    if q:
        from harness.prepare import models
        Order = models()[0]
        pks = list(Order.objects.order_by("id").values_list("pk", flat=True)[:100])

        def queries(count):
            i = 0
            while i < count:
                root = stacks.root_span("root")
                if root is None:
                    for k in range(6):
                        Order.objects.filter(pk=pks[(i + k) % len(pks)]).first()
                else:
                    with root:
                        for k in range(6):
                            Order.objects.filter(pk=pks[(i + k) % len(pks)]).first()
                i += 6
            return i

        queries(300)
        # CPU time of the application thread: what the request pays (the export thread's
        # work is not in it), steady on a busy machine.
        c0 = time.thread_time()
        done = queries(q)
        out["orm_cpu_us_per_query"] = (time.thread_time() - c0) / done * 1e6
        stacks.flush()
    print(json.dumps(out))
""")


def mix_session(mix_path: str):
    """In a workload process: sets Django up under the configuration's tracer (harness.stacks)
    and returns the mix's requests and send(request, k), which sends one through Django's test
    client (with the k-th seeded order id where its path has one) and returns the response."""
    from harness import stacks

    stacks.before_django()
    import django

    django.setup()
    stacks.after_django()
    from django.test import Client

    with open(mix_path) as f:
        spec = json.load(f)
    client = Client(HTTP_COOKIE=spec.get("cookie", ""))
    ids = spec["ids"]

    def send(req: dict, k: int):
        path = req["path"].replace("{id}", str(ids[k % len(ids)]))
        if req["method"] == "POST":
            return client.post(path, data=req["body"],
                               content_type="application/x-www-form-urlencoded",
                               HTTP_X_CSRFTOKEN=spec.get("csrf", ""))
        return client.get(path)

    return spec["requests"], send


def run(configs, rounds: int, n: int, queries: int, mix_path: str, env_of, log) -> dict:
    results: dict = {c: [] for c in configs}
    for r in range(rounds):
        for config in configs:
            out = subprocess.run([sys.executable, "-c", WORKLOAD, str(n), mix_path, str(queries)],
                                 env=env_of(config), capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                raise RuntimeError(f"in-process ({config}) failed:\n{out.stderr[-3000:]}")
            results[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
        log(f"in-process: round {r + 1}/{rounds} " + ", ".join(
            f"{c} {results[c][-1]['process_cpu_us']:.0f}us" for c in configs))
    return results
