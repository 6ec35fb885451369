"""The PostgreSQL and Redis servers the benchmarks use: those scripts/services.sh runs on
loopback (ports from DJTRACE_PG_PORT and DJTRACE_REDIS_PORT, as it reads them)."""

from __future__ import annotations

import os
import socket
import subprocess

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "scripts", "services.sh")


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure(servers: dict[str, int]) -> list[str]:
    """Starts each of `servers` (name: port) that does not answer; returns those it started."""
    started = []
    for name, port in servers.items():
        if not reachable(port):
            subprocess.run(["bash", SCRIPT, "start", name], check=True)
            started.append(name)
    return started


def stop(names: list[str]) -> None:
    if names:
        subprocess.run(["bash", SCRIPT, "stop", *names], check=False)
