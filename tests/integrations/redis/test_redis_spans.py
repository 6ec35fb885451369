"""redis-py commands against the real Redis: CLIENT spans beneath the current span, nothing
outside one, values never exported, pipelines and transactions as one span, errors, asyncio,
and Celery's own Redis connections (kombu, result backend) never traced."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import redis
import redis.asyncio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from support import services

DB = 6


@pytest.fixture
def client(redis_server):
    c = redis.Redis(host="127.0.0.1", port=redis_server, db=DB)
    yield c
    c.close()


@pytest.fixture
def tracer():
    return trace.get_tracer("tests.redis")


def redis_spans(memory) -> list:
    return [s for s in memory.get_finished_spans()
            if s.attributes.get("db.system.name") == "redis"]


def test_commands_are_client_spans_beneath_the_current_span(client, memory, tracer):
    with tracer.start_as_current_span("view") as view:
        client.set("djtrace:secret-key", "secret-value", ex=30)
        assert client.get("djtrace:secret-key") == b"secret-value"
    set_span, get_span = redis_spans(memory)
    assert (set_span.name, get_span.name) == ("SET", "GET")
    for span in (set_span, get_span):
        assert span.kind is SpanKind.CLIENT
        assert span.parent.span_id == view.get_span_context().span_id
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == services.REDIS_PORT
        assert span.attributes["db.namespace"] == str(DB)
    assert set_span.attributes["db.operation.name"] == "SET"
    assert set_span.attributes["db.query.text"] == "SET ? ? ? ?"  # key, value, EX, 30
    assert get_span.attributes["db.query.text"] == "GET ?"
    exported = repr([dict(s.attributes) for s in redis_spans(memory)])
    assert "secret" not in exported


def test_a_command_is_traced_without_running_python_of_djtrace(client, memory, tracer):
    """The common case (a str command name beneath one of djtrace's recording spans) is
    traced natively: no frame of djtrace's Python code runs for it."""
    frames = []

    def profile(frame, event, arg):
        if event == "call":
            frames.append(frame.f_code.co_filename)

    with tracer.start_as_current_span("view"):
        client.set("djtrace:native", "1")
        sys.setprofile(profile)
        try:
            assert client.get("djtrace:native") == b"1"
        finally:
            sys.setprofile(None)
    assert frames  # redis-py's own
    assert not [f for f in frames if f"{os.sep}djtrace{os.sep}" in f]
    assert [s.name for s in redis_spans(memory)] == ["SET", "GET"]


def test_a_command_named_by_bytes_is_traced_too(client, memory, tracer):
    with tracer.start_as_current_span("view"):
        client.execute_command(b"SET", "djtrace:bytes", "v")
        assert client.execute_command("GET", "djtrace:bytes") == b"v"
    set_span, get_span = redis_spans(memory)
    assert (set_span.name, get_span.name) == ("SET", "GET")
    assert set_span.attributes["db.query.text"] == "SET ? ?"
    assert get_span.attributes["db.query.text"] == "GET ?"
    assert set_span.parent.span_id == get_span.parent.span_id


def test_no_span_outside_a_recording_span(client, memory, tracer):
    client.set("djtrace:k", "v")
    client.get("djtrace:k")
    assert redis_spans(memory) == []
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    from djtrace.sdk import ALWAYS_OFF  # noqa: F401 - a not-sampled parent records nothing

    unsampled = NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(0)))
    with use_span(unsampled):
        client.get("djtrace:k")
    assert redis_spans(memory) == []


def test_pipeline_and_transaction_are_one_span_each(client, memory, tracer):
    with tracer.start_as_current_span("view"):
        with client.pipeline(transaction=False) as pipe:
            pipe.set("djtrace:a", 1).get("djtrace:a").incr("djtrace:n")
            pipe.execute()
        with client.pipeline(transaction=True) as pipe:
            pipe.set("djtrace:a", 1).set("djtrace:b", 2)
            pipe.execute()
    pipeline, transaction = redis_spans(memory)
    assert pipeline.name == "PIPELINE"
    assert pipeline.attributes["db.operation.name"] == "PIPELINE"
    assert pipeline.attributes["db.operation.batch.size"] == 3
    assert pipeline.attributes["db.query.text"] == "SET ? ?; GET ?; INCRBY ? ?"
    assert transaction.name == "MULTI SET"
    assert transaction.attributes["db.operation.batch.size"] == 2
    assert transaction.attributes["db.query.text"] == "SET ? ?"


def test_errors_are_recorded(client, memory, tracer):
    client.set("djtrace:string", "x")
    with tracer.start_as_current_span("view"):
        with pytest.raises(redis.ResponseError):
            client.lpush("djtrace:string", "y")
    [span] = redis_spans(memory)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"
    assert span.attributes["error.type"] == "WRONGTYPE"
    assert [e.name for e in span.events] == ["exception"]


def test_connection_errors_are_recorded(memory, tracer):
    from support.otlp_receiver import closed_port

    c = redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=1)
    with tracer.start_as_current_span("view"):
        with pytest.raises(redis.ConnectionError):
            c.get("k")
    [span] = redis_spans(memory)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"


def test_asyncio_client(redis_server, memory, tracer):
    async def main():
        c = redis.asyncio.Redis(host="127.0.0.1", port=redis_server, db=DB)
        try:
            with tracer.start_as_current_span("async view"):
                await c.set("djtrace:async", "v")
                async with c.pipeline(transaction=False) as pipe:
                    pipe.get("djtrace:async").get("djtrace:async")
                    await pipe.execute()
            await c.get("djtrace:async")  # outside: not traced
        finally:
            await c.aclose()

    asyncio.run(main())
    assert [s.name for s in redis_spans(memory)] == ["SET", "PIPELINE GET"]


def test_celery_broker_and_result_backend_connections_are_never_traced(redis_server, memory,
                                                                       tracer):
    from celery import Celery
    from kombu import Connection

    url = services.redis_url(DB)
    with tracer.start_as_current_span("view"):
        with Connection(url) as conn:
            queue = conn.SimpleQueue("djtrace-kombu-test")
            queue.put({"hello": "world"})
            assert queue.get(timeout=5).payload == {"hello": "world"}
            queue.close()
        app = Celery("untraced", broker=url, backend=url)
        app.backend.store_result("djtrace-test-id", 42, "SUCCESS")
        assert app.AsyncResult("djtrace-test-id").result == 42
    assert redis_spans(memory) == []


def test_django_redis_cache_commands_nest_under_the_cache_span(redis_server, tmp_path):
    # Django's settings are process-wide: configured in a process of its own.
    script = tmp_path / "cache_check.py"
    script.write_text(textwrap.dedent(f"""
        import django
        from django.conf import settings
        settings.configure(CACHES={{"default": {{
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": {services.redis_url(DB)!r}}}}})
        django.setup()
        from opentelemetry import trace
        from djtrace.sdk import InMemorySpanExporter, SimpleSpanProcessor, TracerProvider
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        from djtrace.integrations import redis as redis_integration
        redis_integration.install()
        from django.core.cache import cache
        tracer = trace.get_tracer("cache")
        with tracer.start_as_current_span("cache.set") as set_span:
            cache.set("djtrace:cached", {{"v": 1}}, 30)
        with tracer.start_as_current_span("cache.get") as get_span:
            assert cache.get("djtrace:cached") == {{"v": 1}}
        spans = {{s.name: s for s in memory.get_finished_spans()}}
        assert spans["SET"].parent.span_id == set_span.get_span_context().span_id, spans
        assert spans["GET"].parent.span_id == get_span.get_span_context().span_id, spans
        assert spans["GET"].attributes["db.query.text"] == "GET ?"
        print("ok", sorted(spans))
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "DJANGO_SETTINGS_MODULE": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
