"""The training run of djtrace's profile-guided build (scripts/build_wheel.sh, DJTRACE_PGO).

Runs the guide's order service (examples/order_service, the embedded stack) in this process
through Django's test client: the demo's scenario (token, orders created, listed and shown as
JSON and HTML, the N+1 listings, payments through the fake gateway, the management command),
a few of those requests again through Django's ASGI handler, a task run as a Celery worker runs
it, and a few calls of the cache API, --rounds times, every layer traced and exported over
OTLP/HTTP (protobuf) to a sink on loopback in this process. The build under training writes
its branch and call counts when the process exits; the compiler then lays out and inlines the
code that ran for what it ran most.

    PYTHONPATH=<instrumented build> python scripts/pgo_train.py [--rounds 20]

It is a workload, not a test: it does not share the benchmark's page (tests/integrations/django,
/bench/), so that the benchmarks measure code trained on something else. Exits non-zero when the
service does not answer as the demo expects.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "examples" / "order_service"
sys.path[:0] = [str(SERVICE), str(ROOT / "bench")]  # the demo's modules, the bench's sink


def _serve_sink() -> ThreadingHTTPServer:
    """The benchmarks' trace sink (bench/sink.py), in a thread of this process."""
    from sink import Handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="djtrace-pgo-"))
    sink = _serve_sink()
    gateway = subprocess.Popen([sys.executable, "fake_gateway.py", "--port", "0"], cwd=SERVICE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = gateway.stdout.readline()  # "fake-gateway: listening on http://HOST:PORT"
        if "listening on" not in line:
            print(f"pgo_train: the fake gateway did not start: {line!r}", file=sys.stderr)
            return 1
        gateway_url = line.rsplit(" ", 1)[-1].strip()
        env = {
            "DJANGO_SETTINGS_MODULE": "order_service.settings",
            "ORDER_SERVICE_STACK": "embedded",
            "ORDER_SERVICE_VAR": str(var),
            "PAYMENT_GATEWAY_URL": gateway_url,
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
                f"http://127.0.0.1:{sink.server_address[1]}/v1/traces",
        }
        for key in [k for k in os.environ if k.startswith(("OTEL_", "DJTRACE_", "CELERY_"))]:
            del os.environ[key]
        os.environ.update(env)
        import demo  # examples/order_service/demo.py

        # A fresh database with the demo's sample data, made as the demo makes it.
        demo.prepare(var, {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SERVICE), os.environ.get("PYTHONPATH")]))})
        os.chdir(SERVICE)
        return _train(args.rounds)
    finally:
        gateway.terminate()
        gateway.wait(10)
        sink.shutdown()
        shutil.rmtree(var, ignore_errors=True)


def _train(rounds: int) -> int:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import AsyncClient, Client
    from opentelemetry import trace
    from orders.tasks import process_order

    logging.getLogger("django.request").setLevel(logging.ERROR)  # the 4xx it asks for
    for name in ("celery", "orders"):  # each task run's lines
        logging.getLogger(name).setLevel(logging.WARNING)
    client = Client()
    tracer = trace.get_tracer("djtrace.pgo_train")
    password = os.environ.get("DEMO_PASSWORD", "demo-password")

    def call(method: str, path: str, body: dict | None = None, token: str | None = None,
             expect: int | None = None, **headers):
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if method == "GET":
            response = client.get(path, **headers)
        else:
            response = client.post(path, body or {}, content_type="application/json", **headers)
        if expect is not None and response.status_code != expect:
            raise RuntimeError(f"{method} {path} answered {response.status_code}")
        return response.json() if response.get("Content-Type", "").startswith(
            "application/json") else None

    async_client = AsyncClient()

    async def asgi_round(token: str, order_id: int) -> None:
        # The same service through Django's ASGI handler, as uvicorn or daphne serve it: the
        # request hooks' ASGI side, and sync views run in asgiref's worker thread.
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        for path, headers in (("/health/", {}), ("/api/orders/", auth),
                              (f"/api/orders/{order_id}/", auth), ("/orders/html/", {}),
                              ("/orders/n-plus-one/bad/", {}), ("/orders/missing/", {})):
            response = await async_client.get(path, **headers)
            if response.status_code >= 500:
                raise RuntimeError(f"ASGI GET {path} answered {response.status_code}")

    # The steps of the demo's scenario (demo.scenario), not that function itself: it runs the
    # management command in a process of its own, which more than doubles the training's
    # time; trained that way (ten rounds), a build ran the benchmark page 28 µs slower per
    # request in one run (2026-11-29).
    for _ in range(rounds):
        for probe in ("/health/", "/readiness/", "/liveness/"):
            call("GET", probe, expect=200)
        token = call("POST", "/api/token/", {"username": "demo", "password": password},
                     expect=200)["access"]
        order = call("POST", "/api/orders/", {
            "product_name": "Laptop 14-inch", "customer_email": "carol@example.com",
            "items": [{"product_sku": "LP-14", "quantity": 1, "unit_price": "1299.00"},
                      {"product_sku": "BG-01", "quantity": 1, "unit_price": "49.00"}],
        }, token, expect=201, HTTP_X_CUSTOM="train")
        order_id = order["id"]
        for path in ("/api/orders/", f"/api/orders/{order_id}/",
                     "/api/orders/?customer=alice@example.com"):
            call("GET", path, token=token, expect=200)
        for path in ("/orders/", f"/orders/{order_id}/", "/orders/html/",
                     f"/orders/html/{order_id}/", "/orders/n-plus-one/bad/",
                     "/orders/n-plus-one/good/", "/orders/missing/"):
            call("GET", path)
        orders = call("GET", "/api/orders/", token=token, expect=200)["results"]
        for o in orders[:3]:
            call("POST", f"/api/orders/{o['id']}/pay/", {"payment_method": "credit_card"}, token)
        call("POST", "/api/orders/", {"product_name": ""}, token)  # a 400 from validation
        call_command("process_pending_orders", "--limit", "5", stdout=io.StringIO())
        asyncio.run(asgi_round(token, order_id))
        # A task run where it is called (apply()): the Celery consumer's hooks, which the
        # worker runs for every task, with the task's own queries and spans below them.
        if not process_order.apply(args=(order_id,)).successful():
            raise RuntimeError(f"process_order({order_id}) failed")
        # The cache API, which the service's views do not use: misses, hits, many keys.
        with tracer.start_as_current_span("pgo cache"):
            cache.get("pgo:order")
            cache.set("pgo:order", order, 30)
            cache.get("pgo:order")
            cache.get_many(["pgo:order", "pgo:missing"])
            cache.set_many({"pgo:a": 1, "pgo:b": 2}, 30)
            cache.incr("pgo:a")
            cache.delete("pgo:order")
    trace.get_tracer_provider().shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
