"""Outgoing HTTP: requests, urllib3 and httpx CLIENT spans with injected trace context."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.trace import SpanKind, StatusCode

from djtrace.integrations.http import _common

from ._helpers import unmask

HERE = Path(__file__).resolve().parent


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        _Handler.seen.append({k.lower(): v for k, v in self.headers.items()})
        status = int(self.path.split("/status/")[1].split("?")[0]) if "/status/" in self.path \
            else 200
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/status/200")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _clear_seen():
    _Handler.seen.clear()
    _common.reset()
    yield
    _common.reset()


def client_spans(spans):
    return [s for s in spans.spans if s.kind is SpanKind.CLIENT]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_requests_span_and_injection(spans, server):
    import requests

    tracer = trace.get_tracer("test")
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("caller") as caller:
            response = requests.get(server + "/status/200?q=1&access_token=secret123",
                                    auth=("user", "pw"))
    finally:
        context.detach(token)
    assert response.status_code == 200
    (span,) = client_spans(spans)
    assert span.name == "GET"
    assert span.parent.span_id == caller.get_span_context().span_id
    a = span.attributes
    assert a["http.request.method"] == "GET"
    assert unmask(a["url.full"]) == server + "/status/200?q=1&access_token=REDACTED"
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == int(server.rsplit(":", 1)[1])
    assert a["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    headers = _Handler.seen[0]
    trace_id = f"{span.context.trace_id:032x}"
    assert headers["traceparent"] == f"00-{trace_id}-{span.context.span_id:016x}-01"
    assert headers["baggage"] == "tenant=acme"


def test_credentials_in_the_url_are_redacted(spans, server):
    import requests

    url = server.replace("http://", "http://alice:s3cret@") + "/status/200"
    requests.get(url)
    (span,) = client_spans(spans)
    assert unmask(span.attributes["url.full"]) == url.replace("alice:s3cret", "REDACTED:REDACTED")


def test_requests_5xx_is_an_error_4xx_is_not(spans, server):
    import requests

    requests.get(server + "/status/503")
    requests.get(server + "/status/404")
    failed, missing = client_spans(spans)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "503"
    assert missing.status.status_code is StatusCode.UNSET
    assert missing.attributes["http.response.status_code"] == 404


def test_requests_connection_error(spans):
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{_closed_port()}/", timeout=2)
    (span,) = client_spans(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "requests.exceptions.ConnectionError"
    assert [e.name for e in span.events] == ["exception"]


def test_requests_redirects_and_no_urllib3_double(spans, server):
    import requests

    assert requests.get(server + "/redirect").status_code == 200
    # One span for the call, as the official instrumentation makes (requests follows the
    # redirect inside the outer send), and none from urllib3 below requests.
    names = [(s.name, s.attributes["http.response.status_code"]) for s in client_spans(spans)]
    assert names == [("GET", 200)]
    assert len(_Handler.seen) == 2 and all("traceparent" in h for h in _Handler.seen)
    assert all(s.instrumentation_scope.name == "djtrace.http" for s in client_spans(spans))


def test_urllib3_span_and_injection(spans, server):
    import urllib3

    pool = urllib3.PoolManager()
    headers = {"X-Mine": "1"}
    response = pool.request("GET", server + "/status/201?password=pw", headers=headers)
    assert response.status == 201
    (span,) = client_spans(spans)
    assert unmask(span.attributes["url.full"]) == server + "/status/201?password=REDACTED"
    assert span.attributes["http.response.status_code"] == 201
    assert _Handler.seen[0]["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    assert headers == {"X-Mine": "1"}  # the caller's dict is not modified


def test_httpx_sync_and_async(spans, server):
    import httpx

    with httpx.Client() as client:
        assert client.get(server + "/status/200").status_code == 200

    async def go():
        async with httpx.AsyncClient() as client:
            return await client.post(server + "/status/500")

    assert asyncio.run(go()).status_code == 500
    sync_span, async_span = client_spans(spans)
    assert sync_span.name == "GET" and async_span.name == "POST"
    assert async_span.status.status_code is StatusCode.ERROR
    assert _Handler.seen[0]["traceparent"].split("-")[2] == f"{sync_span.context.span_id:016x}"
    assert _Handler.seen[1]["traceparent"].split("-")[2] == f"{async_span.context.span_id:016x}"


def test_dup_semconv_for_clients(spans, server, monkeypatch):
    import requests

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    _common.reset()
    requests.get(server + "/status/200")
    a = client_spans(spans)[0].attributes
    assert a["http.method"] == "GET" and a["http.status_code"] == 200
    assert a["http.url"] == server + "/status/200"
    assert a["net.peer.name"] == "127.0.0.1"


def test_suppressed_context_makes_no_span_and_injects_nothing(spans, server):
    import requests
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from djtrace.integrations import _suppress

    with suppress_instrumentation():
        requests.get(server + "/status/200")
    with _suppress.suppress():
        requests.get(server + "/status/200")
    assert client_spans(spans) == []
    assert "traceparent" not in _Handler.seen[0] and "traceparent" not in _Handler.seen[1]


def test_switched_off_by_setting(spans, server):
    import requests
    from django.test import override_settings

    with override_settings(DJTRACE={"http_client_spans": False}):
        requests.get(server + "/status/200")
    requests.get(server + "/status/200")
    assert len(client_spans(spans)) == 1


def test_official_requests_instrumentation_wrapping_ours_is_not_doubled(spans, server):
    import requests
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=trace.get_tracer_provider())
    try:
        requests.get(server + "/status/200")
    finally:
        instrumentor.uninstrument()
    (span,) = client_spans(spans)
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.requests"
    assert len([h for h in _Handler.seen if "traceparent" in h]) == 1
    # Uninstrumenting the official one gives ours back.
    spans.clear()
    requests.get(server + "/status/200")
    assert [s.instrumentation_scope.name for s in client_spans(spans)] == ["djtrace.http"]


def test_official_instrumentation_installed_first_is_left_alone():
    code = textwrap.dedent("""
        from opentelemetry import trace
        from djtrace.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        RequestsInstrumentor().instrument()
        from djtrace.integrations import http
        print(http.install())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    assert result.returncode == 0, result.stderr
    # requests and urllib3 are imported (the official instrumentation imported them); httpx
    # is not: its integration waits for the application to import it.
    assert result.stdout.strip() == "{'requests': False, 'urllib3': True, 'httpx': None}"
