"""Celery worker processes of the test app for the Celery integration tests (imported by
conftest.py and the tests; a module of its own since every test directory has a conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from support import services
from support.otlp_receiver import OtlpHttpReceiver

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1]
BROKER = services.redis_url(5)


class Worker:
    """A `celery worker` process of the test app, exporting to `receiver`."""

    def __init__(self, tmp_path: Path, receiver: OtlpHttpReceiver, pool: str = "prefork",
                 concurrency: int = 2, args: tuple = (), env: dict | None = None,
                 schedule_delay_ms: int = 100, service: str = "celery-worker") -> None:
        self.queue = f"q-{uuid.uuid4().hex[:12]}"
        self.name = f"w{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = tmp_path / f"worker-{self.queue}.log"
        self.argv = [sys.executable, "-m", "celery", "-A", "djtrace_test_tasks", "worker",
                     "-P", pool, "-c", str(concurrency), "-Q", self.queue, "-n", self.name,
                     "--loglevel=INFO", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", *args]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")]
            ),
            "DJTRACE_TEST_BROKER": BROKER,
            "DJTRACE_TEST_QUEUE": self.queue,
            "OTEL_SERVICE_NAME": service,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": str(schedule_delay_ms),
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Worker:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=HERE, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if " ready." in self.log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"worker did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Sends `sig` to the worker's main process and waits for the whole worker to exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not stop on {sig}:\n{self.log()}") from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
