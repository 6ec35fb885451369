"""The order service on the embedded stack, traced end to end, in one command:

    python examples/order_service/demo.py [--var DIR] [--verbose] [--keep-running]

It prepares a fresh SQLite database with sample data, starts the fake payment gateway, a Celery
worker (prefork, two processes, over kombu's filesystem transport) and Gunicorn (two workers,
--preload, gunicorn.conf.py), drives the guide's curl scenario over HTTP, waits until every
process has exported its spans to var/traces.jsonl, prints the traces as trees and a summary,
and stops everything it started (also on Ctrl-C or failure). Running it again starts afresh.

Exit status 0 when the trace of POST /api/orders/ holds the worker's process_order, the command
was traced, the probes made no span and no personal data reached the trace file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import tracetree  # the modules next to this file
from supervise import Processes, StartupError, free_port

HERE = Path(__file__).resolve().parent

PYTHON = sys.executable
WEB_SERVICE = "django-order-service"
WORKER_SERVICE = "django-celery-worker"
CONSUMER = "process orders.tasks.process_order"
PROBES = ("/health/", "/readiness/", "/liveness/")


class Client:
    """A tiny HTTP client (the standard library's), so the demo's own process is untraced."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None
        self.sent: list[tuple[str, str, int]] = []

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token and path.startswith("/api/") and path != "/api/token/":
            req.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        self.sent.append((method, path, status))
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


def base_env(var: Path, gateway_url: str) -> dict:
    # The demo's choices win over the caller's tracing variables, so that its output is what
    # this file describes whatever the shell exports.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "DJTRACE_", "ORDER_SERVICE_", "CELERY_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "DJANGO_SETTINGS_MODULE": "order_service.settings",
        "ORDER_SERVICE_STACK": "embedded",
        "ORDER_SERVICE_VAR": str(var),
        "OTEL_TRACES_EXPORTER": "console,file",
        "DJTRACE_FILE_PATH": str(var / "traces.jsonl"),
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within 0.2 s, for a prompt demo
        "PAYMENT_GATEWAY_URL": gateway_url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "GUNICORN_CONTROL_SOCKET": str(var / "gunicorn.ctl"),
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def prepare(var: Path, env: dict) -> None:
    """A fresh database with sample data, an empty broker, no traces from a previous run."""
    for name in ("traces.jsonl", "order_service.sqlite3", "order_service.sqlite3-wal",
                 "order_service.sqlite3-shm", "celerybeat-schedule"):
        (var / name).unlink(missing_ok=True)
    for name in ("broker", "mail", "logs"):
        shutil.rmtree(var / name, ignore_errors=True)
    (var / "logs").mkdir(parents=True)
    # Setting up is not part of the story the traces tell.
    quiet = {**env, "OTEL_SDK_DISABLED": "true"}
    for args in (["migrate", "--no-input", "-v", "0"], ["seed_orders", "--reset"]):
        result = subprocess.run([PYTHON, "manage.py", *args], cwd=HERE, env=quiet,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise StartupError(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")


def scenario(client: Client, env: dict, say) -> dict:
    """The guide's curl session, and a little more. Returns what the checks need."""

    def call(method: str, path: str, body: dict | None = None, note: str = "",
             expect: int | None = None, headers: dict | None = None):
        status, reply = client.request(method, path, body, headers)
        say(f"{method:<4} {path:<42} {status}" + (f"  {note}" if note else ""))
        if expect is not None and status != expect:
            raise StartupError(f"{method} {path} answered {status}: {reply}")
        return reply

    for probe in PROBES:
        call("GET", probe, note="(probe: excluded from tracing)", expect=200)

    password = os.environ.get("DEMO_PASSWORD", "demo-password")
    token = call("POST", "/api/token/", {"username": "demo", "password": password},
                 note="(a JWT for the API user)", expect=200)["access"]
    client.token = token

    order = call("POST", "/api/orders/", {
        "product_name": "Laptop 14-inch",
        "customer_email": "carol@example.com",  # staff ordering for a customer
        "items": [{"product_sku": "LP-14", "quantity": 1, "unit_price": "1299.00"},
                  {"product_sku": "BG-01", "quantity": 1, "unit_price": "49.00"}],
    }, note="(an order above 1000 for carol@example.com: process_order enqueued)", expect=201,
        headers={"X-Custom": "demo"})
    order_id = order["id"]

    for path in ("/api/orders/", f"/api/orders/{order_id}/",
                 "/api/orders/?customer=alice@example.com", "/orders/", f"/orders/{order_id}/",
                 "/orders/html/", f"/orders/html/{order_id}/"):
        call("GET", path, expect=200)
    call("GET", "/orders/n-plus-one/bad/", note="(one query per order for its user)", expect=200)
    call("GET", "/orders/n-plus-one/good/", note="(select_related)", expect=200)

    orders = call("GET", "/api/orders/", note="(the orders to pay)", expect=200)["results"]
    by_product = {o["product_name"]: o["id"] for o in orders}
    for product, method in (("Wireless mouse", "credit_card"), ("Rack server", "credit_card"),
                            ("USB-C cable", "bitcoin")):
        path = f"/api/orders/{by_product[product]}/pay/"
        status, reply = client.request("POST", path, {"payment_method": method})
        outcome = reply.get("transaction_id") or reply.get("code") or reply.get("detail")
        say(f"POST {path:<42} {status}  ({product}, {method}: {outcome})")

    result = subprocess.run([PYTHON, "manage.py", "process_pending_orders", "--limit", "5"],
                            cwd=HERE, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise StartupError(f"process_pending_orders failed:\n{result.stdout}{result.stderr}")
    outcome = [line for line in result.stdout.splitlines() if line.startswith("Processed")]
    say(f"$ python manage.py process_pending_orders --limit 5    ({''.join(outcome[-1:])})")
    return {"order_id": order_id, "secrets": [token, password],
            "pii": ["carol@example.com", "alice@example.com"]}


def find_trace(spans: list, root_name: str):
    for roots in tracetree.traces(spans).values():
        for root in roots:
            if root.name == root_name and root.parent_id == "":
                return root
    return None


def count_named(root, name: str) -> int:
    return sum(1 for s in tracetree.walk(root) if s.name == name) if root else 0


def wait_for_spans(path: Path, timeout: float) -> list:
    """Reads the trace file until the worker's spans of the POST and of the command are in."""
    deadline = time.monotonic() + timeout
    spans: list = []
    while time.monotonic() < deadline:
        spans = tracetree.load(path)
        post = find_trace(spans, "POST api/orders/")
        command = find_trace(spans, "manage.py process_pending_orders")
        if (count_named(post, "send_confirmation_email") >= 1
                and count_named(command, "send_confirmation_email") >= 5):
            return spans
        time.sleep(0.25)
    return spans


SHOWN = (
    ("POST api/orders/", "Create an order: the request, its queries, the task it enqueued, and "
                         "the worker running that task, in one trace"),
    ("GET orders/n-plus-one/bad/", "N+1: one query per order for its user, flagged"),
    ("GET orders/n-plus-one/good/", "The same page with select_related: one query"),
    ("GET orders/html/<int:order_id>/", "A template with two includes"),
    ("POST api/orders/<int:pk>/pay/", "Payments: custom spans, the gateway call, a decline"),
    ("manage.py process_pending_orders", "The management command: its own trace, five tasks"),
)


def report(spans: list, client: Client, facts: dict, trace_file: Path, verbose: bool,
           out) -> list[str]:
    """Prints the trees and the summary; returns the failed checks."""
    roots = [r for rs in tracetree.traces(spans).values() for r in rs]
    shown_ids = set()
    for name, title in SHOWN:
        matching = [r for r in roots if r.name == name and r.parent_id == ""]
        if not matching:
            continue
        out(f"\n── {title}")
        for root in matching:
            shown_ids.add(root.trace_id)
            out("")
            out("\n".join(tracetree.render(root, verbose)))
    others = [r for r in roots if r.trace_id not in shown_ids]
    if others:
        out("\n── Other traces")
        for root in others:
            out("  " + tracetree.summary_line(root))

    failures = []
    servers = [s for s in spans if s.kind == 2]
    probe_spans = [s for s in servers if s.attributes.get("url.path") in PROBES]
    post = find_trace(spans, "POST api/orders/")
    consumers = [s for s in tracetree.walk(post) if s.name == CONSUMER] if post else []
    n_plus_one = [(s.name, attrs) for s in spans for name, attrs in s.events
                  if name == "djtrace.n_plus_one"]
    errors = [s for s in spans if s.is_error]
    services: dict[str, int] = {}
    for s in spans:
        services[s.service] = services.get(s.service, 0) + 1
    raw = trace_file.read_bytes() if trace_file.exists() else b""
    leaked = [v for v in facts.get("pii", []) + facts.get("secrets", []) if v.encode() in raw]
    redacted = tracetree.redacted_values(spans)
    probes_sent = sum(1 for _, path, _ in client.sent if path in PROBES)

    out("\n── Summary")
    out(f"  requests sent        {len(client.sent)} ({probes_sent} probes)")
    out(f"  traces               {len(roots)}; spans {len(spans)}: "
        + ", ".join(f"{n} from {svc}" for svc, n in sorted(services.items())))
    out(f"  request spans        {len(servers)}; probe spans {len(probe_spans)}")
    out(f"  Celery               {sum(1 for s in spans if s.kind == 5)} tasks run in the worker, "
        f"{sum(1 for s in spans if s.kind == 4)} sent; the POST's task in its trace: "
        f"{'yes' if consumers else 'NO'}")
    out(f"  N+1 groups found     {len(n_plus_one)}"
        + "".join(f"\n                       {root}: {a.get('djtrace.n_plus_one.count')} × "
                  f"{a.get('db.query.summary')} via {a.get('djtrace.orm.relation')}"
                  for root, a in n_plus_one))
    error_names: dict[str, int] = {}
    for s in errors:
        error_names[s.name] = error_names.get(s.name, 0) + 1
    out(f"  error spans          {len(errors)}: "
        + ", ".join(f"{name} ×{n}" for name, n in sorted(error_names.items())))
    out(f"  PII redactions       {sum(redacted.values())} values: "
        + ", ".join(f"{k} ×{n}" for k, n in sorted(redacted.items())))
    out(f"  personal data leaked {'none' if not leaked else 'YES: ' + ', '.join(leaked)} "
        f"(e-mail addresses, JWT and password searched in {trace_file.name})")
    out(f"  trace file           {trace_file}")

    if not consumers:
        failures.append("the trace of POST /api/orders/ has no process_order span from the worker")
    if find_trace(spans, "manage.py process_pending_orders") is None:
        failures.append("no trace of the management command")
    if probe_spans:
        failures.append(f"{len(probe_spans)} spans for the health probes")
    if leaked:
        failures.append("personal data in the trace file")
    return failures


def _interrupt(signum, frame):
    # SIGTERM (a test runner, a closing terminal) stops the stack as Ctrl-C does.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="The order service on the embedded stack, traced end to end.")
    parser.add_argument("--var", type=Path, default=Path(os.getenv("ORDER_SERVICE_VAR",
                                                                    HERE / "var")),
                        help="working directory for the database, broker, logs and traces")
    parser.add_argument("--verbose", action="store_true", help="every span and attribute")
    parser.add_argument("--timeout", type=float, default=45.0,
                        help="seconds to wait for the worker's spans")
    args = parser.parse_args(argv)
    var = args.var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def say(text: str) -> None:
        print(text, flush=True)

    signal.signal(signal.SIGTERM, _interrupt)

    gateway_port, web_port = free_port(), free_port()
    env = base_env(var, f"http://127.0.0.1:{gateway_port}")
    processes = Processes(var / "logs")
    try:
        say(f"order service demo: database, broker, logs and traces in {var}")
        prepare(var, env)
        say("  database migrated, sample orders seeded")
        processes.start("gateway", [PYTHON, "fake_gateway.py", "--port", str(gateway_port)], env)
        processes.start(
            "worker",
            [PYTHON, "-m", "celery", "-A", "order_service", "worker", "--pool", "prefork",
             "--concurrency", "2", "--hostname", "demo-worker@%h", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            {**env, "OTEL_SERVICE_NAME": WORKER_SERVICE},
        )
        processes.start(
            "gunicorn",
            [PYTHON, "-m", "gunicorn", "order_service.wsgi:application", "-c", "gunicorn.conf.py",
             "--workers", "2", "--preload", "--bind", f"127.0.0.1:{web_port}"],
            {**env, "OTEL_SERVICE_NAME": WEB_SERVICE,
             # Capture these request headers as span attributes: the Authorization header is
             # redacted before export (sensitive key), X-Custom is kept.
             "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,x-custom"},
        )
        processes.wait_for_log("gateway", "listening on", 15)
        processes.wait_http("gunicorn", f"http://127.0.0.1:{web_port}/liveness/", 30)
        processes.wait_for_log("worker", " ready.", 45)
        say(f"  fake payment gateway on :{gateway_port}, Celery worker (prefork, 2 processes), "
            f"Gunicorn on :{web_port} (2 workers, --preload)\n")

        client = Client(f"http://127.0.0.1:{web_port}")
        facts = scenario(client, env, say)

        say("\nwaiting for every process to export its spans...")
        trace_file = var / "traces.jsonl"
        spans = wait_for_spans(trace_file, args.timeout)
        processes.stop()
        spans = tracetree.load(trace_file)  # with what the shutdown flushed
        failures = report(spans, client, facts, trace_file, args.verbose, say)
        say(f"\nlogs of each process in {var / 'logs'}; finished in "
            f"{time.monotonic() - started:.1f} s")
        for failure in failures:
            say(f"FAILED: {failure}")
        return 1 if failures else 0
    except StartupError as exc:
        say(f"\nFAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        processes.stop()


if __name__ == "__main__":
    sys.exit(main())
