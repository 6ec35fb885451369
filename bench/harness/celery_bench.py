"""Celery task throughput on a Redis broker: one solo worker process per configuration, started
once; in each round a producer process sends N trivial tasks, then a last task whose result it
waits for (the worker runs them in order). Figures: tasks per second from the first send to
the last result, CPU per task of the worker (from /proc) and of the producer's thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from harness import procs

CONFIGS = ("untraced", "otel-100", "djtrace-100")

PRODUCER = textwrap.dedent("""
    import json, sys, time
    from harness.celery_app import add, done
    from harness import stacks
    n = int(sys.argv[1])
    done.apply_async().get(timeout=60)   # the worker is up and warm
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(n):
        add.apply_async((i, 1))
    c1 = time.thread_time()
    done.apply_async().get(timeout=300)
    t1 = time.perf_counter()
    stacks.flush()
    print(json.dumps({"seconds": t1 - t0, "producer_cpu_us": (c1 - c0) / n * 1e6}))
""")


class Workers:
    """One solo worker per configuration, started (and warmed up) apart from the measured
    rounds, so that their start-up can overlap other unmeasured work."""

    def __init__(self, tasks: int, env_of, redis_url: str):
        self.tasks = tasks
        self.procs: dict = {}
        self.envs: dict = {}
        for config in CONFIGS:
            env = env_of(config)
            env.update({"BENCH_BROKER": f"{redis_url}/4", "BENCH_BACKEND": f"{redis_url}/5",
                        "BENCH_QUEUE": f"bench-{config}-{os.getpid()}"})
            self.envs[config] = env

    def start(self) -> None:
        """Starts the workers and, without waiting, one unmeasured producer run per worker: a
        worker's first tasks pay for imports and connections."""
        for config, env in self.envs.items():
            self.procs[config] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "harness.celery_app", "worker", "-P",
                 "solo", "-Q", env["BENCH_QUEUE"], "--loglevel=WARNING", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.warm = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(min(self.tasks, 100))],
                                      env=self.envs[c], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for c in CONFIGS]

    def warm_up(self) -> None:
        """Waits for the warm-up runs start() began."""
        for p in self.warm:
            try:
                p.wait(600)
            except subprocess.TimeoutExpired:
                p.kill()

    def run(self, rounds: int, log) -> dict:
        results: dict = {c: [] for c in CONFIGS}
        for r in range(rounds):
            for config in CONFIGS:
                worker = self.procs[config]
                if worker.poll() is not None:
                    raise RuntimeError(f"celery worker ({config}) exited")
                pids = [worker.pid] + procs.children(worker.pid)
                cpu0 = procs.cpu_seconds(pids)
                out = subprocess.run([sys.executable, "-c", PRODUCER, str(self.tasks)],
                                     env=self.envs[config], capture_output=True, text=True,
                                     timeout=600)
                cpu1 = procs.cpu_seconds(pids)
                if out.returncode != 0:
                    raise RuntimeError(f"celery producer ({config}) failed:\n{out.stderr[-3000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                # The producer's first task and its last one run in the worker too: n + 2.
                row["worker_cpu_us"] = (cpu1 - cpu0) / (self.tasks + 2) * 1e6
                row["tasks_per_s"] = self.tasks / row["seconds"]
                results[config].append(row)
            log(f"celery: round {r + 1}/{rounds} " + ", ".join(
                f"{c} {results[c][-1]['tasks_per_s']:.0f}/s" for c in CONFIGS))
        return results

    def stop(self) -> None:
        for p in getattr(self, "warm", []):
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
