"""Official OpenTelemetry instrumentation packages, unchanged, recording through djtrace."""

from __future__ import annotations

import http.server
import sqlite3
import threading

import pytest
import requests
from opentelemetry import trace
from opentelemetry.instrumentation.dbapi import trace_integration, unwrap_connect, wrap_connect
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.trace import SpanKind, StatusCode

# ------------------------------------------------------------------------------------------
# requests


class Handler(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        Handler.received.append({k.lower(): v for k, v in self.headers.items()})
        status = 500 if self.path.startswith("/fail") else 200
        body = b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def instrumented_requests(global_provider, exporter):
    Handler.received.clear()
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument()  # the global tracer provider: djtrace's
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    yield session
    session.close()
    instrumentor.uninstrument()


def http_attr(attrs, old, new):
    return attrs[new] if new in attrs else attrs[old]


def test_requests_client_span(instrumented_requests, http_server, exporter, tracer):
    with tracer.start_as_current_span("caller") as caller:
        response = instrumented_requests.get(f"{http_server}/items?id=1", timeout=10)
    assert response.status_code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"GET", "caller"}
    client = spans["GET"]
    assert client.kind is SpanKind.CLIENT
    assert client.parent.span_id == caller.get_span_context().span_id
    assert client.context.trace_id == caller.get_span_context().trace_id
    assert client.instrumentation_scope.name == "opentelemetry.instrumentation.requests"
    attrs = client.attributes
    assert http_attr(attrs, "http.method", "http.request.method") == "GET"
    assert http_attr(attrs, "http.url", "url.full") == f"{http_server}/items?id=1"
    assert http_attr(attrs, "http.status_code", "http.response.status_code") == 200
    assert client.status.status_code is StatusCode.UNSET
    # The server received the client span's context.
    (headers,) = Handler.received
    ctx = client.context
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def test_requests_without_a_parent_starts_a_trace(instrumented_requests, http_server, exporter):
    instrumented_requests.get(f"{http_server}/", timeout=10)
    (client,) = exporter.get_finished_spans()
    assert client.parent is None
    (headers,) = Handler.received
    assert headers["traceparent"].split("-")[1] == f"{client.context.trace_id:032x}"


def test_requests_server_error_sets_error_status(instrumented_requests, http_server, exporter):
    response = instrumented_requests.get(f"{http_server}/fail", timeout=10)
    assert response.status_code == 500
    (client,) = exporter.get_finished_spans()
    assert client.status.status_code is StatusCode.ERROR
    assert http_attr(client.attributes, "http.status_code", "http.response.status_code") == 500


def test_requests_connection_error_is_recorded(instrumented_requests, exporter):
    # A port nothing listens on: bind one, close it, connect to it.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError):
        instrumented_requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    (client,) = exporter.get_finished_spans()
    assert client.kind is SpanKind.CLIENT
    assert client.status.status_code is StatusCode.ERROR


# ------------------------------------------------------------------------------------------
# dbapi on sqlite3


@pytest.fixture
def traced_sqlite(global_provider, exporter):
    wrap_connect(__name__, sqlite3, "connect", "sqlite", tracer_provider=global_provider)
    yield
    unwrap_connect(sqlite3, "connect")


def test_dbapi_query_spans_are_children_of_the_current_span(traced_sqlite, exporter, tracer):
    with tracer.start_as_current_span("request") as request:
        conn = sqlite3.connect(":memory:")
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE orders (id INTEGER, total REAL)")
        cursor.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 9.5), (2, 3.0)])
        cursor.execute("SELECT total FROM orders WHERE id = ?", (2,))
        assert cursor.fetchall() == [(3.0,)]
        conn.close()
    spans = exporter.get_finished_spans()
    queries = [s for s in spans if s.name != "request"]
    assert [s.name for s in queries] == ["CREATE", "INSERT", "SELECT"]
    for span in queries:
        assert span.kind is SpanKind.CLIENT
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.attributes["db.system"] == "sqlite"
    attrs = queries[2].attributes
    statement = attrs.get("db.statement", attrs.get("db.query.text"))
    assert statement == "SELECT total FROM orders WHERE id = ?"


def test_dbapi_failed_query_records_error(traced_sqlite, exporter, tracer):
    conn = sqlite3.connect(":memory:")
    with tracer.start_as_current_span("request"):
        with pytest.raises(sqlite3.OperationalError):
            conn.cursor().execute("SELECT * FROM missing_table")
    conn.close()
    (query,) = [s for s in exporter.get_finished_spans() if s.name == "SELECT"]
    assert query.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in query.events)


def test_dbapi_trace_integration(global_provider, exporter, tracer):
    trace_integration(sqlite3, "connect", "sqlite")  # the global provider
    try:
        conn = sqlite3.connect(":memory:")
        with tracer.start_as_current_span("job") as job:
            conn.cursor().execute("SELECT 1")
        conn.close()
    finally:
        unwrap_connect(sqlite3, "connect")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["SELECT"].parent.span_id == job.get_span_context().span_id
    assert trace.get_tracer_provider() is global_provider
