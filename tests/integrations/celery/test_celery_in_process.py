"""Producer and consumer in this process (kombu's in-memory transport; the task runs from the
received message as the solo pool runs it): task arguments, the argument filter, publish
failures, eager runs, the local-root hook, and the public-API path used with other SDKs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest
from celery import Celery
from celery.worker.request import Request
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from djtrace.integrations import _settings
from djtrace.integrations.celery import _state, arguments, install


@pytest.fixture(scope="module")
def inproc_app():
    install()
    app = Celery("inproc", broker="memory://")
    app.conf.task_ignore_result = True

    @app.task(name="inproc.add")
    def add(x, y):
        return x + y

    @app.task(name="inproc.boom")
    def boom():
        raise KeyError("missing")

    app.add = add
    app.boom = boom
    return app


@pytest.fixture
def app(inproc_app, memory):
    memory.clear()
    yield inproc_app
    memory.clear()


def run_next(app) -> None:
    """Receives the next message of the default queue and runs it, as a solo worker would."""
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("celery", no_ack=True)
        Request(queue.get(timeout=5), app=app).execute()
        queue.close()


@pytest.fixture
def task_args():
    def enable(**values):
        _settings.set_overrides(values)
        _state.load_settings()

    yield enable
    for key in ("celery_task_args", "celery_task_args_max_length"):
        _settings._overrides.pop(key, None)
    _state.load_settings()
    arguments.set_filter(None)


def spans_by_kind(memory) -> dict:
    return {s.kind: s for s in memory.get_finished_spans()}


def test_send_and_run_in_one_process(app, memory):
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("command") as root:
        app.add.delay(1, 2)
        run_next(app)
    spans = spans_by_kind(memory)
    send, run = spans[SpanKind.PRODUCER], spans[SpanKind.CONSUMER]
    assert send.parent.span_id == root.get_span_context().span_id
    assert run.parent.span_id == send.context.span_id
    assert run.parent.is_remote  # continued from the message's headers
    assert "djtrace.celery.args" not in run.attributes


def test_task_arguments_when_enabled_are_bounded_strings_through_the_filter(app, memory,
                                                                            task_args):
    task_args(celery_task_args=True, celery_task_args_max_length=12)
    seen = []

    def redact(task_name, key, text):
        seen.append((task_name, key))
        return text.replace("4111", "****")

    arguments.set_filter(redact)
    app.add.delay("4111-1111-1111-1111", 2)
    run_next(app)
    spans = spans_by_kind(memory)
    for span in (spans[SpanKind.PRODUCER], spans[SpanKind.CONSUMER]):
        text = span.attributes["djtrace.celery.args"]
        assert text.startswith("('****") and len(text) <= 12 and text.endswith("...")
        assert span.attributes["djtrace.celery.kwargs"] == "{}"
    assert ("inproc.add", "djtrace.celery.args") in seen


def test_a_failing_filter_drops_the_arguments(app, memory, task_args):
    task_args(celery_task_args=True)
    arguments.set_filter(lambda *a: 1 / 0)
    app.add.delay(1, 2)
    run_next(app)
    for span in memory.get_finished_spans():
        assert "djtrace.celery.args" not in span.attributes


def test_publish_failure_ends_the_producer_span_with_error(app, memory):
    from kombu import Connection

    from support.otlp_receiver import closed_port

    with pytest.raises(Exception):
        app.add.apply_async((1, 2), connection=Connection(f"redis://127.0.0.1:{closed_port()}"),
                            retry=False)
    [send] = memory.get_finished_spans()
    assert send.kind is SpanKind.PRODUCER
    assert send.status.status_code is StatusCode.ERROR
    assert send.attributes["error.type"]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_failure_in_process(app, memory):
    app.boom.delay()
    run_next(app)
    run = spans_by_kind(memory)[SpanKind.CONSUMER]
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes["error.type"] == "KeyError"


def test_eager_run_is_a_child_of_the_current_span(app, memory):
    tracer = trace.get_tracer("tests")
    app.conf.task_always_eager = True
    try:
        with tracer.start_as_current_span("request") as root:
            assert app.add.delay(2, 2).get() == 4
    finally:
        app.conf.task_always_eager = False
    [run] = [s for s in memory.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert run.parent.span_id == root.get_span_context().span_id
    assert not run.parent.is_remote


def test_local_root_hook_of_the_database_integration(app, memory, monkeypatch):
    calls = []
    module = types.ModuleType("djtrace.integrations.django.db")
    module.begin_local_root = lambda span: calls.append(span.get_span_context().span_id)
    monkeypatch.setitem(sys.modules, "djtrace.integrations.django.db", module)
    app.add.delay(1, 1)
    run_next(app)
    run = spans_by_kind(memory)[SpanKind.CONSUMER]
    assert calls == [run.context.span_id]
    # A task run eagerly inside a span is not a local root: no call.
    app.conf.task_always_eager = True
    try:
        with trace.get_tracer("tests").start_as_current_span("request"):
            app.add.delay(1, 1)
    finally:
        app.conf.task_always_eager = False
    assert len(calls) == 1


def test_with_the_official_sdk_provider(tmp_path):
    """Another SDK's provider: spans and propagation go through the public API."""
    script = tmp_path / "official.py"
    script.write_text(textwrap.dedent("""
        from celery import Celery
        from celery.worker.request import Request
        from opentelemetry import baggage, context, trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from djtrace.integrations.celery import install

        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        install()
        app = Celery("official", broker="memory://")
        app.conf.task_ignore_result = True

        @app.task(name="official.read")
        def read():
            return baggage.get_baggage("tenant")

        token = context.attach(baggage.set_baggage("tenant", "acme"))
        with trace.get_tracer("t").start_as_current_span("root") as root:
            read.delay()
        context.detach(token)
        with app.connection_for_read() as conn:
            q = conn.SimpleQueue("celery", no_ack=True)
            assert Request(q.get(timeout=5), app=app).execute() == "acme"
        spans = {s.name: s for s in memory.get_finished_spans()}
        send, run = spans["send official.read"], spans["process official.read"]
        assert send.parent.span_id == root.get_span_context().span_id
        assert run.parent.span_id == send.context.span_id
        assert run.attributes["celery.state"] == "SUCCESS"
        print("ok")
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
