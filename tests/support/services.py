"""Session fixtures starting the real servers tests need (PostgreSQL, Redis, MariaDB) through
scripts/services.sh, on loopback, and stopping them afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"
PG_PORT = int(os.environ.get("DJTRACE_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("DJTRACE_REDIS_PORT", "63799"))
MYSQL_PORT = int(os.environ.get("DJTRACE_MYSQL_PORT", "33069"))


def reachable(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` (a server already running)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(*names: str) -> None:
    subprocess.run(["bash", str(SERVICES), "start", *names], check=True, capture_output=True)


def stop(*names: str) -> None:
    subprocess.run(["bash", str(SERVICES), "stop", *names], check=False, capture_output=True)


def _database(engine: str, name: str, user: str, port: int, **extra) -> dict:
    return {"ENGINE": engine, "NAME": name, "USER": user, "PASSWORD": "", "HOST": "127.0.0.1",
            "PORT": str(port), **extra}


def postgres_settings(name: str = "djtrace_test") -> dict:
    """A Django DATABASES entry for the test server."""
    return _database("django.db.backends.postgresql", name, "postgres", PG_PORT)


def mysql_settings(name: str = "djtrace_test") -> dict:
    """A Django DATABASES entry for the MariaDB test server (Django's MySQL backend)."""
    return _database("django.db.backends.mysql", name, "djtrace", MYSQL_PORT,
                     OPTIONS={"charset": "utf8mb4"},
                     TEST={"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})


def redis_url(db: int = 0) -> str:
    return f"redis://127.0.0.1:{REDIS_PORT}/{db}"
