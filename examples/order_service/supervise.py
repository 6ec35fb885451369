"""Starting and stopping the order service's processes, for demo.py, fullstack.py and the tests:
each process in a session of its own, its output in a log file, stopped by its id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


class StartupError(Exception):
    """A process did not start or a step failed; the message says what, with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The processes started through start(); stop() ends each by its id, gently first."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, cwd=HERE, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process))
        return process

    def get(self, name: str) -> subprocess.Popen:
        return next(p for n, p in self.started if n == name)

    def log(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, name: str, text: str, timeout: float) -> None:
        process = self.get(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(name):
                return
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise StartupError(f"{name} did not start; the end of its log:\n{self.log(name)[-3000:]}")

    def wait_http(self, name: str, url: str, timeout: float) -> None:
        process = self.get(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise StartupError(f"{name} did not answer at {url}; the end of its log:\n"
                           f"{self.log(name)[-3000:]}")

    def exited(self) -> list[str]:
        """Names of the processes that have exited."""
        return [n for n, p in self.started if p.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        # Gunicorn and Celery shut down gracefully on SIGTERM (the worker finishes its tasks and
        # each process flushes its spans); what is left after `timeout` is killed, with the pool
        # processes of its session.
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in reversed(self.started):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
        self.started.clear()
