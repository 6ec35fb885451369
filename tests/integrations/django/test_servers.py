"""Requests through real servers: uvicorn (ASGI, in a thread of this process) and Gunicorn
(WSGI, 2 pre-forked workers with --preload, spans received by a real OTLP receiver)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from support.otlp_receiver import OtlpHttpReceiver

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def uvicorn_server():
    import uvicorn
    from django.core.asgi import get_asgi_application

    port = _free_port()
    config = uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert _wait_for(lambda: server.started, 20), "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _server_spans(spans, name, count=1, timeout=10.0):
    """ASGI spans end on the server's thread after the response: wait for them."""
    return _wait_for(lambda: len(spans.by_name(name)) >= count and spans.by_name(name), timeout)


def test_asgi_sync_view_through_uvicorn(spans, uvicorn_server):
    status, body = _get(uvicorn_server + "/page/?q=1")
    assert status == 200 and b"page" in body
    root = _server_spans(spans, "GET page/")[0]
    assert root.kind is SpanKind.SERVER and root.parent is None
    a = root.attributes
    assert a["url.path"] == "/page/" and a["url.query"] == "q=1"
    assert a["network.protocol.version"] == "1.1"
    assert a["server.port"] == int(uvicorn_server.rsplit(":", 1)[1])
    assert a["client.address"] == "127.0.0.1"
    view = spans.one("page")
    chain = []
    span = view
    while span is not None:
        chain.append(span.name)
        span = spans.parent_of(span)
    assert chain[-1] == "GET page/" and "django.middleware.csrf.CsrfViewMiddleware" in chain
    assert spans.parent_of(spans.one("render web/page.html")).name == "page"


def test_asgi_async_view_and_error_through_uvicorn(spans, uvicorn_server):
    assert _get(uvicorn_server + "/async/")[0] == 200
    assert _get(uvicorn_server + "/boom/")[0] == 500
    ok = _server_spans(spans, "GET async/")[0]
    assert ok.status.status_code is StatusCode.UNSET
    get = spans.one("cache.get")
    assert spans.parent_of(get).name == "async_view"
    failed = _server_spans(spans, "GET boom/")[0]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 500
    assert [e.name for e in failed.events] == ["exception"]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_asgi_streaming_ends_after_the_body(spans, uvicorn_server):
    status, body = _get(uvicorn_server + "/astream/")
    assert body == b"achunk0\nachunk1\nachunk2\n"
    root = _server_spans(spans, "GET astream/")[0]
    gets = spans.by_name("cache.get")
    assert len(gets) == 3
    for get in gets:
        assert get.parent.span_id == root.context.span_id
        assert get.end_time <= root.end_time
    status, body = _get(uvicorn_server + "/stream/")  # a sync iterator served by ASGI
    assert body == b"chunk0\nchunk1\nchunk2\n"
    sync_root = _server_spans(spans, "GET stream/")[0]
    assert len([g for g in spans.by_name("cache.get")
                if g.parent.span_id == sync_root.context.span_id]) == 3


def test_asgi_remote_parent_from_an_instrumented_client(spans, uvicorn_server):
    import httpx
    with httpx.Client() as client:
        assert client.get(uvicorn_server + "/plain/").status_code == 200
    server = _server_spans(spans, "GET plain/")[0]
    client_span = _wait_for(lambda: spans.by_name("GET") and spans.by_name("GET")[0])
    assert client_span.kind is SpanKind.CLIENT
    assert server.parent.span_id == client_span.context.span_id
    assert server.parent.is_remote
    assert server.context.trace_id == client_span.context.trace_id


def test_asgi_client_disconnect_ends_the_span(spans, uvicorn_server):
    with pytest.raises(OSError):
        urllib.request.urlopen(uvicorn_server + "/slow/?seconds=4", timeout=1.0)
    root = _server_spans(spans, "GET slow/", timeout=10)
    assert root, spans.names()
    assert root[0].attributes["djtrace.http.client_aborted"] is True
    assert root[0].end_time - root[0].start_time < 3.5e9


def test_asgi_excluded_url_through_uvicorn(spans, uvicorn_server, monkeypatch):
    from djtrace.integrations.django import settings as dj_settings

    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "healthz")
    dj_settings.reload()
    assert _get(uvicorn_server + "/healthz/")[0] == 200
    assert _get(uvicorn_server + "/plain/")[0] == 200
    _server_spans(spans, "GET plain/")
    time.sleep(0.1)
    assert [s.name for s in spans.spans if s.kind is SpanKind.SERVER] == ["GET plain/"]
    assert "user span" not in spans.names()


# -- Gunicorn --------------------------------------------------------------------------------

def test_wsgi_through_gunicorn_with_preload_and_two_workers(tmp_path):
    port = _free_port()
    with OtlpHttpReceiver() as receiver:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "PYTHONPATH": os.pathsep.join([str(HERE)] + [
                p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
            "DJTRACE_TEST_DB": "sqlite",
            "DJTRACE_TEST_SQLITE": str(tmp_path / "gunicorn.sqlite3"),
            "DJTRACE_TEST_EXPORTERS": "otlp",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        })
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2",
             "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "project.wsgi:application"],
            cwd=str(HERE), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    _get(base + "/plain/", timeout=5)
                    break
                except OSError as err:
                    if time.time() > deadline or proc.poll() is not None:
                        raise AssertionError(proc.stderr.read() if proc.poll() is not None
                                             else "gunicorn did not answer") from err
                    time.sleep(0.2)
            for _ in range(6):
                assert _get(base + "/plain/") == (200, b"plain")
            assert _get(base + "/stream/")[1] == b"chunk0\nchunk1\nchunk2\n"
            assert _get(base + "/boom/")[0] == 500
            assert _get(base + "/missing/")[0] == 404
            assert _get(base + "/no/such/path/")[0] == 404
            traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            req = urllib.request.Request(base + "/items/3/", headers={"traceparent": traceparent})
            urllib.request.urlopen(req, timeout=10).read()
            servers = _wait_for(lambda: [
                s for _, _, s in receiver.received.spans() if s.kind == 2] if len([
                    s for _, _, s in receiver.received.spans() if s.kind == 2]) >= 12 else None,
                timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        received = [s for _, _, s in receiver.received.spans()]
    assert servers, [s.name for s in received]
    names = sorted(s.name for s in servers)
    assert names.count("GET plain/") == 7 and "GET missing/" in names
    assert "GET stream/" in names and "GET boom/" in names and "GET items/<int:pk>/" in names
    assert "GET" in names  # the unresolved 404
    by_parent: dict = {}
    for s in received:
        by_parent.setdefault(s.parent_span_id, []).append(s)
    stream = next(s for s in servers if s.name == "GET stream/")
    below = sorted(s.name for s in by_parent[stream.span_id])
    # The middleware chain, and the cache reads the body generator made while being sent.
    assert below == ["cache.get"] * 3 + ["django.middleware.security.SecurityMiddleware"]
    stream_gets = [s for s in received if s.name == "cache.get" and s.trace_id == stream.trace_id]
    assert len(stream_gets) == 3
    assert all(g.end_time_unix_nano <= stream.end_time_unix_nano for g in stream_gets)
    boom = next(s for s in servers if s.name == "GET boom/")
    assert boom.status.code == 2
    continued = next(s for s in servers if s.name == "GET items/<int:pk>/")
    assert continued.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert continued.parent_span_id.hex() == "00f067aa0ba902b7"
    assert len({s.trace_id for s in servers}) == len(servers)
