"""The order service on the full stack, on this machine:

    bash examples/order_service/run_full_stack.sh [--port 8000] [--no-beat] [--no-seed]

PostgreSQL and Redis from Debian's packages on loopback (scripts/services.sh: 127.0.0.1:54329
and :63799), the database migrated (and seeded), the fake payment gateway, a Celery prefork
worker and beat over Redis, Gunicorn with gunicorn.conf.py (2 workers, --preload). Every process
exports its spans over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318, OTLP/
HTTP; OTEL_EXPORTER_OTLP_PROTOCOL=grpc for :4317), so start a collector or a backend first, e.g.
Jaeger (`docker run -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:latest`), or set
OTEL_TRACES_EXPORTER=console to see the spans in var/logs/*.log instead.

Ctrl-C stops what this started: the processes, and PostgreSQL and Redis unless they were already
running (or --keep-services).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from supervise import Processes, StartupError, free_port  # next to this file

HERE = Path(__file__).resolve().parent

ROOT = HERE.parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
PYTHON = sys.executable
PG_PORT = int(os.getenv("DJTRACE_PG_PORT", "54329"))
REDIS_PORT = int(os.getenv("DJTRACE_REDIS_PORT", "63799"))


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class FullStack:
    """Starts and stops the full stack. `env` is added to every process's environment (tracing
    variables, for instance); `redis_db` picks the Redis database for broker and cache."""

    def __init__(self, var: Path, port: int = 8000, env: dict | None = None,
                 web_workers: int = 2, concurrency: int = 2, beat: bool = True,
                 db_name: str = "orders", redis_db: int = 0, queue: str = "celery",
                 seed: bool = True, keep_services: bool = False) -> None:
        self.var = var
        self.port = port
        self.web_workers = web_workers
        self.concurrency = concurrency
        self.beat = beat
        self.db_name = db_name
        self.redis_url = f"redis://127.0.0.1:{REDIS_PORT}/{redis_db}"
        self.seed = seed
        self.keep_services = keep_services
        self.started_services: list[str] = []
        self.gateway_port = free_port()
        self.processes = Processes(var / "logs")
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.getenv("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "order_service.settings",
            "ORDER_SERVICE_STACK": "full",
            "ORDER_SERVICE_VAR": str(var),
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(PG_PORT),
            "DB_USER": "postgres",
            "DB_PASSWORD": "",
            "DB_NAME": db_name,
            "REDIS_URL": self.redis_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "GUNICORN_CONTROL_SOCKET": str(var / "gunicorn.ctl"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([PYTHON, "manage.py", *args], cwd=HERE,
                                env={**self.env, **(env or {})}, capture_output=True, text=True)
        if result.returncode != 0:
            raise StartupError(f"manage.py {' '.join(args)} failed:\n{result.stdout}"
                               f"{result.stderr}")
        return result

    def start_services(self) -> None:
        for name, port in (("postgres", PG_PORT), ("redis", REDIS_PORT)):
            if not _port_open(port):
                subprocess.run(["bash", str(SERVICES), "start", name], check=True)
                self.started_services.append(name)

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.db_name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def start(self) -> FullStack:
        self.var.mkdir(parents=True, exist_ok=True)
        self.start_services()
        self.create_database()
        # Setting up is not part of the story the traces tell.
        quiet = {"OTEL_SDK_DISABLED": "true"}
        self.manage("migrate", "--no-input", "-v", "0", env=quiet)
        if self.seed:
            self.manage("seed_orders", env=quiet)
        p = self.processes
        p.start("gateway", [PYTHON, "fake_gateway.py", "--port", str(self.gateway_port)], self.env)
        p.start("worker", [PYTHON, "-m", "celery", "-A", "order_service", "worker",
                           "--pool", "prefork", "--concurrency", str(self.concurrency),
                           "--hostname", f"order-worker-{os.getpid()}@%h", "--loglevel", "INFO"],
                {**self.env, "OTEL_SERVICE_NAME": "django-celery-worker"})
        if self.beat:
            p.start("beat", [PYTHON, "-m", "celery", "-A", "order_service", "beat",
                             "--loglevel", "INFO"],
                    {**self.env, "OTEL_SERVICE_NAME": "django-celery-beat"})
        p.start("gunicorn", [PYTHON, "-m", "gunicorn", "order_service.wsgi:application",
                             "-c", "gunicorn.conf.py", "--workers", str(self.web_workers),
                             "--preload", "--bind", f"127.0.0.1:{self.port}"],
                {**self.env, "OTEL_SERVICE_NAME": "django-order-service"})
        p.wait_for_log("gateway", "listening on", 15)
        p.wait_http("gunicorn", f"{self.url}/readiness/", 60)
        p.wait_for_log("worker", " ready.", 60)
        if self.beat:
            p.wait_for_log("beat", "beat: Starting", 30)
        return self

    def stop(self) -> None:
        self.processes.stop()
        if not self.keep_services:
            for name in reversed(self.started_services):
                subprocess.run(["bash", str(SERVICES), "stop", name], check=False)
        self.started_services.clear()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="The order service on the full stack (PostgreSQL, Redis, Gunicorn, Celery).")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--var", type=Path,
                        default=Path(os.getenv("ORDER_SERVICE_VAR", HERE / "var" / "full")))
    parser.add_argument("--no-beat", action="store_true", help="no Celery beat")
    parser.add_argument("--no-seed", action="store_true", help="no sample data")
    parser.add_argument("--keep-services", action="store_true",
                        help="leave PostgreSQL and Redis running on exit")
    args = parser.parse_args(argv)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    stack = FullStack(args.var.resolve(), port=args.port, beat=not args.no_beat,
                      seed=not args.no_seed, keep_services=args.keep_services)
    try:
        stack.start()
        password = "$DEMO_PASSWORD" if os.getenv("DEMO_PASSWORD") else "demo-password"
        endpoint = (os.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
        print(f"order service on {stack.url} (Gunicorn, 2 workers, --preload); Celery worker"
              f"{' and beat' if stack.beat else ''} over {stack.redis_url}; PostgreSQL database "
              f"{stack.db_name!r} on 127.0.0.1:{PG_PORT}\n"
              f"spans exported to {os.getenv('OTEL_TRACES_EXPORTER', 'otlp')} ({endpoint})\n"
              f"logs in {stack.processes.logs}\n\n"
              f"  curl -s -X POST {stack.url}/api/token/ -H 'Content-Type: application/json' "
              f"-d '{{\"username\": \"demo\", \"password\": \"{password}\"}}'\n"
              f"  curl -s {stack.url}/api/orders/ -H 'Authorization: Bearer <access>'\n"
              f"  curl -s {stack.url}/orders/n-plus-one/bad/\n\n"
              "Ctrl-C to stop.", flush=True)
        while not stopping:
            exited = stack.processes.exited()
            if exited:
                print(f"stopped: {', '.join(exited)} exited (see its log)", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    except StartupError as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
