"""Macro workloads: the app under Gunicorn (sync workers) and uvicorn (ASGI), one server per
configuration, all started once and then driven in turn (A B C A B C ...) by the load generator
at a fixed concurrency over the endpoint mix; and export under an unreachable collector.

Per run: throughput and latencies (from the load generator), CPU per request (user + system
time of the server's process tree from /proc, over every request the run served, warm-up
included), peak RSS per worker (VmHWM)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from harness import procs

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One Gunicorn or uvicorn server of one configuration."""

    def __init__(self, kind: str, config: str, workers: int, env: dict, log_dir: str):
        self.kind, self.config, self.workers = kind, config, workers
        self.port = free_port()
        self.env = dict(env)
        self.env["BENCH_BIND"] = f"127.0.0.1:{self.port}"
        self.env["BENCH_WORKERS"] = str(workers)
        if kind == "uvicorn":
            self.env["BENCH_CONN_MAX_AGE"] = "0"
        self.log_path = os.path.join(log_dir, f"{kind}-{config}-{self.port}.log")
        self.ready_path = "/health/"  # answered 200 once the server is up
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.kind == "gunicorn":
            argv = [sys.executable, "-m", "gunicorn", "-c", os.path.join(HERE, "gunicorn_conf.py"),
                    "harness.wsgi:application"]
        else:
            # One process: Django runs sync views in one thread per process under ASGI anyway.
            argv = [sys.executable, "-m", "uvicorn", "harness.asgi:application", "--host",
                    "127.0.0.1", "--port", str(self.port), "--no-access-log", "--lifespan",
                    "off", "--log-level", "warning", "--loop", "asyncio", "--http", "h11"]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        ok = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} ({self.config}) exited: {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    ok = ok + 1 if resp.status == 200 else 0
            except OSError:
                ok = 0
            booted = self.kind != "gunicorn" or len(self.worker_pids()) >= self.workers
            if ok >= 3 and booted:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} ({self.config}) not ready in {timeout:.0f} s: "
                           f"{self.tail()}")

    def tail(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def pids(self) -> list[int]:
        return [self.proc.pid] + procs.children(self.proc.pid)

    def worker_pids(self) -> list[int]:
        if self.kind == "gunicorn":
            return procs.children(self.proc.pid)
        return [self.proc.pid]

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None and not self.log.closed:
                self.log.close()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            for pid in procs.children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def stop_all(servers: list[Server], grace: float = 3.0) -> None:
    """SIGTERM to every server at once; whatever still runs after `grace` seconds (a tracer
    flushing to a collector that cannot be reached, say) is killed. Nothing is measured here."""
    trees = {s: s.pids() for s in servers if s.proc is not None and s.proc.poll() is None}
    for s in servers:
        s.terminate()
    deadline = time.monotonic() + grace
    for s in trees:
        try:
            s.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for _s, pids in trees.items():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for s in servers:
        s.stop()


def start_all(servers: list[Server], timeout: float) -> None:
    for s in servers:
        s.start()
    for s in servers:
        s.wait_ready(timeout)


def load(port: int, mix_path: str, concurrency: int, duration: float, warmup: float,
         max_requests: int, slice_s: float = 1.0) -> dict:
    argv = [sys.executable, "-m", "harness.loadgen", "--port", str(port), "--mix", mix_path,
            "--concurrency", str(concurrency), "--duration", str(duration), "--warmup",
            str(warmup), "--max-requests", str(max_requests), "--slice", str(slice_s)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=warmup + duration + 120,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)})
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def measure(server: Server, mix_path: str, concurrency: int, duration: float, warmup: float,
            max_requests: int) -> dict:
    pids = server.pids()
    before = procs.counters(pids)
    result = load(server.port, mix_path, concurrency, duration, warmup, max_requests)
    after = procs.counters(pids)
    served = result["all_requests"]
    for key in procs.COUNTERS:
        result[f"{key}_per_request"] = ((after[key] - before[key]) / served
                                         if served else float("nan"))
    mem = [procs.memory_kb(p) for p in server.worker_pids()]
    hwm = [h for _, h in mem if h]
    rss = [r for r, _ in mem if r]
    result.update({
        "cpu_ms_per_request": result["user_ms_per_request"] + result["sys_ms_per_request"],
        "rss_mb_per_worker": sum(rss) / len(rss) / 1024 if rss else float("nan"),
        "peak_rss_mb_per_worker": sum(hwm) / len(hwm) / 1024 if hwm else float("nan"),
        "max_peak_rss_mb": max(hwm) / 1024 if hwm else float("nan"),
    })
    return result


def run_interleaved(servers: list[Server], rounds: int, mix_path: str, concurrency: int,
                    duration: float, warmup: float, max_requests: int, log,
                    label: str) -> dict:
    results: dict = {s.config: [] for s in servers}
    for r in range(rounds):
        for s in servers:
            row = measure(s, mix_path, concurrency, duration, warmup, max_requests)
            results[s.config].append(row)
        log(f"{label}: round {r + 1}/{rounds} " + ", ".join(
            f"{s.config} {results[s.config][-1]['throughput']:.0f}/s" for s in servers))
    return results


def unreachable(server: Server, mix_path: str, concurrency: int, duration: float,
                slice_s: float, max_requests: int) -> dict:
    """Load for `duration` seconds while the exporter's collector is unreachable (its sink in
    hang mode, bench/sink.py): throughput and worker memory per time slice."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.is_set():
            rss = [procs.memory_kb(p)[0] for p in server.worker_pids()]
            rss = [x for x in rss if x]
            if rss:
                samples.append((time.monotonic() - t0, sum(rss) / len(rss) / 1024))
            stop.wait(slice_s / 2)

    thread = threading.Thread(target=sample, daemon=True)
    pids = server.pids()
    cpu0 = procs.cpu_seconds(pids)
    thread.start()
    try:
        result = load(server.port, mix_path, concurrency, duration, 1.0, max_requests, slice_s)
    finally:
        stop.set()
        thread.join(5)
    cpu1 = procs.cpu_seconds(pids)
    result["cpu_ms_per_request"] = ((cpu1 - cpu0) / result["all_requests"] * 1e3
                                    if result["all_requests"] else float("nan"))
    result["rss_samples"] = samples
    result.pop("latencies_us", None)
    return result
