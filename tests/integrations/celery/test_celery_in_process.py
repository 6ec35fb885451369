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
    from kombu.exceptions import OperationalError
    from support.otlp_receiver import closed_port

    with pytest.raises(OperationalError):
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
    # A task run eagerly inside a span is not a local root, but gets statistics of its own,
    # as it would in a worker.
    app.conf.task_always_eager = True
    try:
        with trace.get_tracer("tests").start_as_current_span("request") as request:
            app.add.delay(1, 1)
    finally:
        app.conf.task_always_eager = False
    eager = [s for s in memory.get_finished_spans() if s.kind is SpanKind.CONSUMER][-1]
    assert eager.parent.span_id == request.get_span_context().span_id
    assert calls == [run.context.span_id, eager.context.span_id]


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


# -- repeated task sends ----------------------------------------------------------------------

REPEAT_QUEUE = "inproc-repeat"


@pytest.fixture
def repeat_settings(app):
    """Overrides the repeated-send settings for one test; the messages sent are purged."""
    def override(**values):
        _settings.set_overrides(values)
        _state.load_settings()

    yield override
    for key in ("task_send_repeat_threshold", "task_send_repeat_strict"):
        _settings._overrides.pop(key, None)
    _state.load_settings()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(REPEAT_QUEUE)


def send_add(app, times: int) -> int:
    """Sends inproc.add `times` times from one line; returns that line."""
    for _ in range(times):
        app.add.apply_async((1, 1), queue=REPEAT_QUEUE)
    return send_add.__code__.co_firstlineno + 3


def repeated_sends(span) -> list:
    return [e for e in span.events if e.name == "djtrace.celery.repeated_send"]


def test_one_task_sent_six_times_from_one_line_is_a_repeated_send(app, memory, repeat_settings):
    with trace.get_tracer("tests").start_as_current_span("command"):
        line = send_add(app, 6)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert root.attributes["djtrace.celery.send_count"] == 6
    assert root.attributes["djtrace.celery.repeated_send.count"] == 1
    [event] = repeated_sends(root)
    assert event.attributes["celery.task_name"] == "inproc.add"
    assert event.attributes["djtrace.celery.repeated_send.count"] == 6
    assert event.attributes["code.filepath"] == __file__
    assert event.attributes["code.lineno"] == line
    assert event.attributes["code.function"] == "send_add"


def test_four_sends_are_not_a_repeated_send(app, memory, repeat_settings):
    with trace.get_tracer("tests").start_as_current_span("command"):
        send_add(app, 4)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert root.attributes["djtrace.celery.send_count"] == 4
    assert root.attributes["djtrace.celery.repeated_send.count"] == 0
    assert repeated_sends(root) == []


def test_each_call_site_is_a_group_of_its_own(app, memory, repeat_settings):
    with trace.get_tracer("tests").start_as_current_span("command"):
        for _ in range(3):
            app.add.apply_async((1, 1), queue=REPEAT_QUEUE)
            app.add.apply_async((2, 2), queue=REPEAT_QUEUE)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert root.attributes["djtrace.celery.send_count"] == 6
    assert repeated_sends(root) == []  # 3 + 3, not 6

    memory.clear()
    with trace.get_tracer("tests").start_as_current_span("command"):
        first = send_add(app, 5)
        second = send_add_again(app, 5)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert root.attributes["djtrace.celery.repeated_send.count"] == 2
    assert sorted(e.attributes["code.lineno"] for e in repeated_sends(root)) == sorted(
        [first, second])


def send_add_again(app, times: int) -> int:
    for _ in range(times):
        app.add.apply_async((1, 1), queue=REPEAT_QUEUE)
    return send_add_again.__code__.co_firstlineno + 2


def test_each_root_counts_its_own_sends(app, memory, repeat_settings):
    tracer = trace.get_tracer("tests")
    for _ in range(2):
        with tracer.start_as_current_span("command"):
            send_add(app, 3)
    for root in [s for s in memory.get_finished_spans() if s.name == "command"]:
        assert root.attributes["djtrace.celery.send_count"] == 3
        assert repeated_sends(root) == []


def test_sends_outside_any_root_are_not_counted(app, memory, repeat_settings):
    send_add(app, 6)  # no current span: nothing to report on, and no error
    from djtrace import _native

    assert _native.record_task_send("inproc.add") is None


def test_strict_mode_raises_once_after_the_message_is_sent(app, memory, repeat_settings):
    from djtrace.integrations.celery.producer import RepeatedTaskSendError

    repeat_settings(task_send_repeat_strict=True)
    with trace.get_tracer("tests").start_as_current_span("command"):
        send_add(app, 4)
        with pytest.raises(RepeatedTaskSendError) as info:
            send_add(app, 1)
        send_add(app, 1)  # the group was reported: no second error
    message = str(info.value)
    assert message.startswith("repeated task sends: 5 × inproc.add from ")
    assert f"{__file__}:{send_add.__code__.co_firstlineno + 3} in send_add" in message
    assert message.endswith("use a group or a bulk task")
    assert info.value.finding["task_name"] == "inproc.add"
    assert info.value.finding["kind"] == "repeated_task_send"
    # The fifth message went out and its span ended before the error.
    sends = [s for s in memory.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert len(sends) == 6


def test_threshold_zero_turns_the_detection_off(app, memory, repeat_settings):
    repeat_settings(task_send_repeat_threshold=0, task_send_repeat_strict=True)
    with trace.get_tracer("tests").start_as_current_span("command"):
        send_add(app, 8)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert root.attributes["djtrace.celery.send_count"] == 8
    assert repeated_sends(root) == []


def test_a_lower_threshold_takes_effect(app, memory, repeat_settings):
    repeat_settings(task_send_repeat_threshold=2)
    with trace.get_tracer("tests").start_as_current_span("command"):
        send_add(app, 2)
    [root] = [s for s in memory.get_finished_spans() if s.name == "command"]
    assert repeated_sends(root)[0].attributes["djtrace.celery.repeated_send.count"] == 2


@pytest.mark.parametrize("raw", ["lots", "-1", "1", True])
def test_a_bad_threshold_is_a_config_error_naming_key_and_value(raw, monkeypatch):
    from djtrace import ConfigError

    with pytest.raises(ConfigError) as info:
        _settings.set_overrides({"task_send_repeat_threshold": raw})
    assert "task_send_repeat_threshold" in str(info.value)
    assert repr(raw) in str(info.value)
    monkeypatch.setenv("DJTRACE_TASK_SEND_REPEAT_THRESHOLD", str(raw))
    with pytest.raises(ConfigError) as info:
        _settings.value("task_send_repeat_threshold")
    assert "DJTRACE_TASK_SEND_REPEAT_THRESHOLD" in str(info.value)


def test_the_threshold_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJTRACE_TASK_SEND_REPEAT_THRESHOLD", "12")
    assert _settings.value("task_send_repeat_threshold") == 12
    monkeypatch.setenv("DJTRACE_TASK_SEND_REPEAT_STRICT", "yes")
    assert _settings.value("task_send_repeat_strict") is True
