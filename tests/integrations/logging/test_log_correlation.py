"""Log records carry the ids of the current span (the official logging instrumentation's
attribute names plus aliases), and Gunicorn's access log prints a request's trace id."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from support.spans import global_memory_exporter

from djtrace.integrations import logging as log_correlation


@pytest.fixture
def records():
    global_memory_exporter()
    log_correlation.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(log_correlation.LOG_FORMAT))
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            captured.append(record)

    logger = logging.getLogger("tests.log_correlation")
    logger.setLevel(logging.INFO)
    keep = Keep()
    logger.addHandler(handler)
    logger.addHandler(keep)
    yield logger, captured, stream
    logger.removeHandler(handler)
    logger.removeHandler(keep)


def test_records_carry_the_current_span_ids(records):
    logger, captured, stream = records
    tracer = trace.get_tracer("tests.logging")
    with tracer.start_as_current_span("outer") as outer:
        logger.info("one")
        with tracer.start_as_current_span("inner") as inner:
            logger.info("two")
        logger.info("three")
    logger.info("outside")
    one, two, three, outside = captured
    ctx = outer.get_span_context()
    assert one.otelTraceID == one.trace_id == f"{ctx.trace_id:032x}"
    assert one.otelSpanID == one.span_id == f"{ctx.span_id:016x}"
    assert one.otelTraceSampled is True
    assert one.trace_flags == "01"
    assert two.otelSpanID == f"{inner.get_span_context().span_id:016x}"
    assert two.otelTraceID == one.otelTraceID
    assert three.otelSpanID == one.otelSpanID  # back in the outer span
    assert (outside.otelTraceID, outside.otelSpanID, outside.otelTraceSampled) == ("0", "0", False)
    provider = trace.get_tracer_provider()
    assert one.otelServiceName == provider.resource.attributes["service.name"]
    text = stream.getvalue()
    assert f"[trace_id={one.otelTraceID} span_id={one.otelSpanID} " in text
    assert "trace_sampled=True] - one" in text


def test_unsampled_and_foreign_spans(records):
    logger, captured, _ = records
    unsampled = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(0)))
    with trace.use_span(unsampled):
        logger.info("unsampled")
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider

    sdk_span = SdkProvider().get_tracer("sdk").start_span("sdk")
    with trace.use_span(sdk_span, end_on_exit=True):
        logger.info("sdk")
    first, second = captured
    assert (first.otelTraceID, first.otelSpanID) == (f"{0xABC:032x}", f"{0xDEF:016x}")
    assert first.otelTraceSampled is False and first.trace_flags == "00"
    assert second.otelTraceID == f"{sdk_span.get_span_context().trace_id:032x}"


def test_install_is_idempotent_and_uninstall_restores(records):
    factory = logging.getLogRecordFactory()
    log_correlation.install()
    assert logging.getLogRecordFactory() is factory
    log_correlation.uninstall()
    try:
        assert not hasattr(logging.getLogRecordFactory(), "__djtrace_wrapped__")
        assert not hasattr(logging.LogRecord("n", 20, "p", 1, "m", None, None), "otelTraceID")
    finally:
        log_correlation.install()


def test_record_factory_cost_is_small(records):
    logger, captured, _ = records
    tracer = trace.get_tracer("tests.logging")
    make = logging.getLogRecordFactory()
    original = make.__djtrace_wrapped__
    n = 20000
    with tracer.start_as_current_span("outer"):
        t0 = time.perf_counter()
        for _ in range(n):
            original("n", 20, "p", 1, "m", None, None)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n):
            make("n", 20, "p", 1, "m", None, None)
        traced = time.perf_counter() - t0
    # A generous bound (shared machines): correlation adds well under a record's own cost.
    assert traced < base * 2.5, (base, traced)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_access_log_prints_the_trace_id(tmp_path):
    app = tmp_path / "traced_wsgi.py"
    app.write_text(textwrap.dedent("""
        import djtrace
        from opentelemetry import trace
        from djtrace.integrations.logging import remember_request as remember

        djtrace.configure()
        tracer = trace.get_tracer("app")

        def application(environ, start_response):
            # What the request integration does: the root span's ids go into the environ.
            with tracer.start_as_current_span("GET /") as span:
                remember(environ, span)
                body = format(span.get_span_context().trace_id, "032x").encode()
            headers = [("Content-Type", "text/plain")]
            if environ.get("PATH_INFO") == "/traceresponse":
                environ.pop("djtrace.trace_id")
                sc = span.get_span_context()
                headers.append(("traceresponse", f"00-{sc.trace_id:032x}-{sc.span_id:016x}-01"))
            start_response("200 OK", headers)
            return [body]
    """))
    port = _free_port()
    access_log = tmp_path / "access.log"
    conf = tmp_path / "gunicorn_conf.py"
    conf.write_text(textwrap.dedent(f"""
        from djtrace.integrations.logging.gunicorn import ACCESS_LOG_FORMAT
        logger_class = "djtrace.integrations.logging.gunicorn.Logger"
        access_log_format = ACCESS_LOG_FORMAT
        accesslog = {str(access_log)!r}
        bind = "127.0.0.1:{port}"
        workers = 1
    """))
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "PYTHONPATH": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf),
                               "traced_wsgi:application"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        bodies = []
        deadline = time.time() + 30
        for path in ("/", "/traceresponse"):
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                        bodies.append(r.read().decode())
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
        deadline = time.time() + 10
        while time.time() < deadline and access_log.read_text().count("\n") < 2:
            time.sleep(0.05)
        lines = access_log.read_text().splitlines()
    finally:
        server.terminate()
        server.wait(10)
    assert len(lines) == 2, lines
    for body, line in zip(bodies, lines, strict=True):
        assert len(body) == 32
        assert line.endswith(f"trace_id={body}"), line
