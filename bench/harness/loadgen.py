"""A small closed-loop HTTP load generator for loopback benchmarks.

`concurrency` threads, each with its own keep-alive connection (http.client reopens it when the
server closes it, as Gunicorn's sync workers do after every response), send requests from a
mix of endpoints in turn and time each one from the request's first byte to the response's
last. Every run is bounded twice: by `duration` seconds and by `max_requests` requests. Only
127.0.0.1 / localhost / ::1 are accepted as targets.

    python -m harness.loadgen --port 8000 --mix mix.json --concurrency 4 --duration 5 \
        [--warmup 1] [--max-requests 200000] [--slice 1.0]

The mix is a JSON list of {"label", "method", "path", "body"?, "content_type"?}; "{id}" in a
path is replaced by the next id of "ids" ({"requests": [...], "ids": [...], "cookie": "...",
"csrf": "..."}). Prints one JSON object: counts, errors, latencies (µs, measured phase only),
completions per time slice and the client's own CPU time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Worker(threading.Thread):
    def __init__(self, index, args, spec, start_at, measure_at, stop_at, quota):
        super().__init__(daemon=True)
        self.index = index
        self.args = args
        self.requests = spec["requests"]
        self.ids = spec.get("ids") or [1]
        self.headers = {"Host": f"{args.host}:{args.port}", "Connection": "keep-alive"}
        if spec.get("cookie"):
            self.headers["Cookie"] = spec["cookie"]
        self.csrf = spec.get("csrf")
        self.start_at, self.measure_at, self.stop_at = start_at, measure_at, stop_at
        self.quota = quota
        self.latencies: list[int] = []
        self.labels: list[int] = []
        self.ends: list[float] = []
        self.errors = 0
        self.completed = 0  # successful responses, warm-up included
        self.status: dict[int, int] = {}

    def run(self):
        conn = http.client.HTTPConnection(self.args.host, self.args.port, timeout=30)
        n_req, n_ids = len(self.requests), len(self.ids)
        i = self.index * 7
        sent = 0
        perf = time.perf_counter
        while sent < self.quota:
            now = perf()
            if now >= self.stop_at:
                break
            k = i % n_req
            req = self.requests[k]
            path = req["path"]
            if "{id}" in path:
                path = path.replace("{id}", str(self.ids[(i // n_req + self.index) % n_ids]))
            headers = dict(self.headers)
            body = req.get("body")
            if body is not None:
                body = body.encode()
                headers["Content-Type"] = req.get("content_type",
                                                  "application/x-www-form-urlencoded")
                if self.csrf:
                    headers["X-CSRFToken"] = self.csrf
            i += 1
            t0 = perf()
            try:
                conn.request(req["method"], path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            t1 = perf()
            sent += 1
            if 0 < status < 400:
                self.completed += 1
            if t0 < self.measure_at:
                continue
            if status == 0 or status >= 400:
                self.errors += 1
                self.status[status] = self.status.get(status, 0) + 1
                continue
            self.latencies.append(int((t1 - t0) * 1e6))
            self.labels.append(k)
            self.ends.append(t1)
        conn.close()


def run(args, spec) -> dict:
    if args.host not in LOOPBACK:
        raise SystemExit(f"loadgen: {args.host} is not a loopback address")
    cpu0 = time.process_time()
    start = time.perf_counter()
    measure_at = start + args.warmup
    stop_at = measure_at + args.duration
    quota = max(1, args.max_requests // args.concurrency)
    workers = [Worker(k, args, spec, start, measure_at, stop_at, quota)
               for k in range(args.concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(args.warmup + args.duration + 60)
    ended = time.perf_counter()
    latencies = [x for w in workers for x in w.latencies]
    ends = [x for w in workers for x in w.ends]
    elapsed = min(ended, stop_at) - measure_at
    n_slices = max(1, int(round(args.duration / args.slice)))
    slices = [0] * n_slices
    for t in ends:
        k = int((t - measure_at) / args.slice)
        if 0 <= k < n_slices:
            slices[k] += 1
    per_label: dict[str, list[int]] = {}
    for w in workers:
        for lat, li in zip(w.latencies, w.labels, strict=False):
            per_label.setdefault(spec["requests"][li]["label"],
                                 []).append(lat)
    status: dict[str, int] = {}
    for w in workers:
        for code, n in w.status.items():
            status[str(code)] = status.get(str(code), 0) + n
    return {
        "requests": len(latencies),
        "all_requests": sum(w.completed for w in workers),
        "errors": sum(w.errors for w in workers),
        "status_errors": status,
        "elapsed_s": elapsed,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "latencies_us": sorted(latencies),
        "per_label_median_us": {k: sorted(v)[len(v) // 2] for k, v in per_label.items() if v},
        "slices": slices,
        "slice_s": args.slice,
        "client_cpu_s": time.process_time() - cpu0,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mix", required=True, help="JSON file: requests, ids, cookie, csrf")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--slice", type=float, default=1.0)
    args = parser.parse_args(argv)
    with open(args.mix) as f:
        spec = json.load(f)
    json.dump(run(args, spec), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
