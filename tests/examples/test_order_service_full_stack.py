"""The order service on the full stack, for real: PostgreSQL and Redis (scripts/services.sh),
Gunicorn with two workers and --preload (gunicorn.conf.py), a Celery prefork worker and beat,
the fake payment gateway, and a real OTLP/HTTP receiver in this process that every one of them
exports to. The guide's scenario is driven over HTTP, then the received traces are checked."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import services
from support.otlp_receiver import OtlpHttpReceiver
from support.spans import redis_running

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_service"
if str(EXAMPLE) not in sys.path:
    sys.path.append(str(EXAMPLE))  # the example's helper modules, after everything else

from demo import Client  # noqa: E402
from fullstack import FullStack  # noqa: E402
from supervise import free_port  # noqa: E402

# Names of this run only: another run of the suite may share the servers.
DB_NAME = f"order_service_e2e_{os.getpid()}"
QUEUE = f"order-service-e2e-{os.getpid()}"
REDIS_DB = 11
PROBES = ("/health/", "/readiness/", "/liveness/")
WEB, WORKER = "django-order-service", "django-celery-worker"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
STATUS_ERROR = 2
CONSUMER_NAME = "process orders.tasks.process_order"


@pytest.fixture(scope="module")
def servers():
    pg_running, redis_was_running = services.reachable(services.PG_PORT), redis_running(
        services.REDIS_PORT)
    services.start("postgres", "redis")
    import psycopg
    import redis

    with psycopg.connect(host="127.0.0.1", port=services.PG_PORT, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    yield
    with psycopg.connect(host="127.0.0.1", port=services.PG_PORT, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    client = redis.Redis.from_url(services.redis_url(REDIS_DB))
    client.delete(QUEUE, *client.keys(f"*{QUEUE}*"))
    if not pg_running:
        services.stop("postgres")
    if not redis_was_running:
        services.stop("redis")


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    service: str
    pid: int
    attributes: dict
    events: list
    status_code: int
    status_message: str
    children: list = field(default_factory=list)


def _value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def received_spans(receiver: OtlpHttpReceiver) -> list[Span]:
    spans = []
    for resource, _scope, s in receiver.received.spans():
        res = {kv.key: _value(kv.value) for kv in resource.attributes}
        spans.append(Span(
            trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
            name=s.name, kind=s.kind, service=res.get("service.name", ""),
            pid=res.get("process.pid", 0),
            attributes={kv.key: _value(kv.value) for kv in s.attributes},
            events=[(e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in s.events],
            status_code=s.status.code, status_message=s.status.message))
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        parent = by_id.get(s.parent_id)
        if parent is not None:
            parent.children.append(s)
    return spans


def roots(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s.name == name and not s.parent_id]


def descendants(span: Span) -> list[Span]:
    out = []
    for child in span.children:
        out.append(child)
        out += descendants(child)
    return out


def named(span: Span, name: str) -> list[Span]:
    return [s for s in descendants(span) if s.name == name]


def one(span: Span, name: str) -> Span:
    found = named(span, name)
    assert len(found) == 1, f"{len(found)} spans {name!r} under {span.name!r}: " \
                            f"{[s.name for s in descendants(span)]}"
    return found[0]


@pytest.fixture(scope="module")
def run(servers, tmp_path_factory):
    """Starts the stack, drives the scenario, waits for the spans; yields what the tests check."""
    var = tmp_path_factory.mktemp("order-service-full")
    with OtlpHttpReceiver() as receiver:
        stack = FullStack(var, port=free_port(), db_name=DB_NAME, redis_db=REDIS_DB,
                          queue=QUEUE, keep_services=True, env={
                              "OTEL_TRACES_EXPORTER": "otlp",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                              "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
                              "OTEL_BSP_SCHEDULE_DELAY": "100",
                              "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST":
                                  "authorization,x-custom",
                          })
        try:
            stack.start()
            facts = drive(stack)
            facts["spans"] = wait_for_spans(receiver)
            facts["stack"] = stack
            facts["gunicorn_pid"] = stack.processes.get("gunicorn").pid
            facts["worker_pid"] = stack.processes.get("worker").pid
            facts["web_worker_pids"] = child_pids(facts["gunicorn_pid"])
        finally:
            stack.stop()
        facts["raw"] = receiver.received.raw_bytes()
        facts["spans"] = received_spans(receiver)  # with what the shutdown flushed
        yield facts


def child_pids(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def drive(stack: FullStack) -> dict:
    client = Client(stack.url)
    facts: dict = {"client": client}
    for probe in PROBES:
        assert client.request("GET", probe)[0] == 200
    status, body = client.request("POST", "/api/token/",
                                  {"username": "demo", "password": "demo-password"})
    assert status == 200, body
    client.token = facts["token"] = body["access"]
    status, body = client.request(
        "POST", "/api/orders/",
        {"product_name": "Laptop 14-inch", "customer_email": "carol@example.com",
         "items": [{"product_sku": "LP-14", "quantity": 1, "unit_price": "1299.00"},
                   {"product_sku": "BG-01", "quantity": 1, "unit_price": "49.00"}]},
        headers={"X-Custom": "e2e"})
    assert status == 201, body
    facts["order_id"] = body["id"]
    for path in ("/api/orders/?customer=alice@example.com", "/orders/n-plus-one/bad/",
                 "/orders/n-plus-one/good/", f"/orders/html/{body['id']}/"):
        assert client.request("GET", path)[0] == 200, path
    status, orders = client.request("GET", "/api/orders/")
    ids = {o["product_name"]: o["id"] for o in orders["results"]}
    assert client.request("POST", f"/api/orders/{ids['Wireless mouse']}/pay/",
                          {"payment_method": "credit_card"})[0] == 200
    assert client.request("POST", f"/api/orders/{ids['Rack server']}/pay/",
                          {"payment_method": "credit_card"})[0] == 402
    stack.manage("process_pending_orders", "--limit", "5")
    facts["form_order_id"], facts["browser_requests"] = create_order_with_the_form(stack.url)
    return facts


def create_order_with_the_form(base: str) -> tuple[int, int]:
    """OrderCreateView as a browser uses it: admin login (session), then the form POST with
    its CSRF token. Returns the new order's id and the number of requests made."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = browser.open(f"{base}/admin/login/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    login = urllib.parse.urlencode({"username": "demo", "password": "demo-password",
                                    "csrfmiddlewaretoken": csrf, "next": "/admin/"}).encode()
    browser.open(f"{base}/admin/login/", data=login)  # redirected to /admin/
    token = next(c.value for c in jar if c.name == "csrftoken")  # rotated at login
    form = urllib.parse.urlencode({"product_name": "Desk lamp", "amount": "1500.00",
                                   "csrfmiddlewaretoken": token}).encode()
    with browser.open(f"{base}/orders/create/", data=form) as response:
        assert response.status == 201
        return json.loads(response.read())["id"], 4


def wait_for_spans(receiver: OtlpHttpReceiver, timeout: float = 60) -> list[Span]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = received_spans(receiver)
        post = roots(spans, "POST api/orders/")
        command = roots(spans, "manage.py process_pending_orders")
        if (post and named(post[0], "send_confirmation_email") and command
                and len(named(command[0], "send_confirmation_email")) >= 5):
            return spans
        time.sleep(0.2)
    return received_spans(receiver)


# -- the order, from the request to the worker ------------------------------------------------

def test_post_order_trace_holds_the_request_and_the_worker_task(run):
    [post] = roots(run["spans"], "POST api/orders/")
    assert post.kind == SERVER and post.service == WEB
    assert post.attributes["http.response.status_code"] == 201
    view = one(post, "OrderViewSet.create")
    auth = one(view, "OrderViewSet.perform_authentication")
    [auth_query] = [s for s in auth.children if s.name == "SELECT auth_user"]
    assert auth_query.kind == CLIENT
    assert "auth_user" in auth_query.attributes["db.query.text"]
    insert = one(view, "INSERT orders")
    assert insert.kind == CLIENT
    producer = one(view, "send orders.tasks.process_order")
    assert producer.kind == PRODUCER

    consumer = one(post, CONSUMER_NAME)
    assert consumer.kind == CONSUMER and consumer.service == WORKER
    assert consumer.trace_id == post.trace_id and consumer.parent_id == producer.span_id
    assert consumer.attributes["order.id"] == run["order_id"]
    in_worker = [s.name for s in consumer.children]
    for name in ("SELECT orders", "validate_high_value_order", "UPDATE orders",
                 "send_confirmation_email"):
        assert name in in_worker, in_worker
    assert in_worker.index("SELECT orders") < in_worker.index("UPDATE orders") < \
        in_worker.index("send_confirmation_email")


def test_the_form_view_creates_an_order_in_a_session(run):
    [post] = roots(run["spans"], "POST orders/create/")
    assert post.attributes["http.response.status_code"] == 201
    view = one(post, "OrderCreateView.post")
    assert named(view, "INSERT orders") and named(view, "send orders.tasks.process_order")
    # LoginRequiredMixin evaluated request.user: the session, then its user.
    queries = [s.name for s in descendants(view) if s.kind == CLIENT]
    assert queries.index("SELECT django_session") < queries.index("SELECT auth_user") < \
        queries.index("INSERT orders"), queries
    consumer = one(post, CONSUMER_NAME)
    assert consumer.attributes["order.id"] == run["form_order_id"]
    assert named(consumer, "validate_high_value_order")


def test_the_request_span_carries_the_custom_middleware_attributes(run):
    # The guide's middleware annotate trace.get_current_span(): the request span.
    [post] = roots(run["spans"], "POST api/orders/")
    assert post.attributes.get("http.custom_header") == "e2e", post.attributes
    assert post.attributes.get("request.user.authenticated") is True
    assert "app.request.duration_ms" in post.attributes


def test_spans_come_from_forked_processes(run):
    # Tracing is initialised in Gunicorn's master (on_starting, --preload) and in the Celery
    # worker's main process; the spans are exported by the processes forked from them.
    web = {s.pid for s in run["spans"] if s.service == WEB and s.kind == SERVER}
    assert web and web <= run["web_worker_pids"], (web, run["web_worker_pids"])
    assert run["gunicorn_pid"] not in web
    consumers = {s.pid for s in run["spans"] if s.kind == CONSUMER}
    assert consumers and run["worker_pid"] not in consumers


def test_management_command_trace(run):
    [command] = roots(run["spans"], "manage.py process_pending_orders")
    assert command.service == WEB
    assert command.attributes.get("command.limit") == 5
    assert command.attributes.get("orders.processed_count") == 5
    singles = [s for s in command.children if s.name == "process_single_order"]
    assert len(singles) == 5
    for single in singles:
        [producer] = [s for s in single.children if s.kind == PRODUCER]
        [consumer] = [s for s in producer.children if s.kind == CONSUMER]
        assert consumer.service == WORKER and consumer.trace_id == command.trace_id
        assert named(consumer, "send_confirmation_email")
    # process_order sent once per order from one line: reported like an N+1 (5 is the threshold).
    assert command.attributes.get("djtrace.celery.send_count") == 5
    assert command.attributes.get("djtrace.celery.repeated_send.count") == 1
    [(_, event)] = [e for e in command.events if e[0] == "djtrace.celery.repeated_send"]
    assert event["celery.task_name"] == "orders.tasks.process_order"
    assert event["djtrace.celery.repeated_send.count"] == 5
    assert event["code.filepath"].endswith("orders/management/commands/process_pending_orders.py")
    assert event["code.function"] == "Command.handle"


def test_n_plus_one_is_flagged_on_the_bad_listing_only(run):
    flagged = {s.name for s in run["spans"] if not s.parent_id
               for name, _ in s.events if name == "djtrace.n_plus_one"}
    assert flagged == {"GET orders/n-plus-one/bad/"}
    [bad] = roots(run["spans"], "GET orders/n-plus-one/bad/")
    [(_, event)] = [e for e in bad.events if e[0] == "djtrace.n_plus_one"]
    assert event["djtrace.orm.relation"] == "Order.user"
    assert event["djtrace.n_plus_one.count"] >= 5
    [good] = roots(run["spans"], "GET orders/n-plus-one/good/")
    assert len(named(good, "SELECT orders")) == 1 and not named(good, "SELECT auth_user")


def test_health_endpoints_produce_no_spans(run):
    spans = run["spans"]
    assert not [s for s in spans if s.attributes.get("url.path") in PROBES]
    assert not [s for s in spans if s.name.upper().startswith("PING")]
    # Every query of the web tier ran inside a request or the command: none became a root of
    # its own (the probes' SELECT 1 would).
    assert not [s for s in spans if s.service == WEB and not s.parent_id and s.kind == CLIENT]
    requests_sent = len([p for _, p, _ in run["client"].sent if p not in PROBES])
    requests_sent += run["browser_requests"]
    assert len([s for s in spans if s.kind == SERVER]) == requests_sent


def test_personal_data_from_the_requests_never_reaches_the_receiver(run):
    raw = run["raw"]
    for value in ("carol@example.com", "alice@example.com", run["token"], "demo-password",
                  "Bearer "):
        assert value.encode() not in raw, f"{value!r} was exported"
    [post] = roots(run["spans"], "POST api/orders/")
    # The Authorization header was captured (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_...) and
    # redacted; the e-mail of the customer's confirmation too.
    assert post.attributes["http.request.header.authorization"] == ["[REDACTED]"]
    email = one(post, "send_confirmation_email")
    assert "@" not in email.attributes["email.to"]


def test_payment_spans(run):
    pays = roots(run["spans"], "POST api/orders/<int:pk>/pay/")
    by_status = {s.attributes["http.response.status_code"]: s for s in pays}
    assert set(by_status) == {200, 402}

    ok = one(by_status[200], "process_payment")
    assert ok.kind == 1 and ok.status_code != STATUS_ERROR
    assert ok.attributes["payment.transaction_id"].startswith("ch_")
    assert one(ok, "validate_payment_method").attributes["validation.result"] == "valid"
    charge = one(ok, "payment_gateway.charge")
    assert charge.kind == CLIENT and charge.status_code != STATUS_ERROR
    [http_call] = [s for s in charge.children if s.kind == CLIENT]
    assert http_call.attributes["http.response.status_code"] == 200

    failed = one(by_status[402], "process_payment")
    assert failed.status_code == STATUS_ERROR
    assert any(name == "exception" for name, _ in failed.events)
    declined = one(failed, "payment_gateway.charge")
    assert declined.kind == CLIENT and declined.status_code == STATUS_ERROR
    assert declined.attributes["http.response.status_code"] == 402
    assert declined.attributes["payment.decline_code"] == "insufficient_funds"


def test_beat_runs_with_the_stack(run):
    log = run["stack"].processes.log("beat")
    assert "beat: Starting" in log and "Traceback" not in log
    assert os.path.exists(run["stack"].var / "celerybeat-schedule") or any(
        p.name.startswith("celerybeat-schedule") for p in run["stack"].var.iterdir())
