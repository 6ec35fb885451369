"""Span processors and exporters written in Python on djtrace, and the batch processor's
settings, flushing and shutdown."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, StatusCode

from djtrace.sdk import (
    BatchSpanProcessor,
    InMemorySpanExporter,
    ReadableSpan,
    Resource,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
    SpanProcessor,
    TracerProvider,
)
from djtrace.sdk.trace.export import ConfigError

from ._helpers import RecordingProcessor, run_python


class ListExporter(SpanExporter):
    """An exporter written in Python: keeps each batch and the thread that exported it."""

    def __init__(self, result=SpanExportResult.SUCCESS) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.threads: list[int] = []
        self.shutdowns = 0
        self.result = result
        self.lock = threading.Lock()

    def export(self, spans):
        with self.lock:
            self.batches.append(list(spans))
            self.threads.append(threading.get_ident())
        return self.result

    def shutdown(self) -> None:
        self.shutdowns += 1

    @property
    def names(self) -> list[str]:
        with self.lock:
            return [s.name for batch in self.batches for s in batch]


class BlockingExporter(ListExporter):
    """Blocks inside export() until released, to hold the batch worker."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans):
        self.entered.set()
        self.release.wait(10)
        return super().export(spans)


def wait_for(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def provider_for():
    made = []

    def make(*processors, **kwargs) -> TracerProvider:
        provider = TracerProvider(shutdown_on_exit=False, **kwargs)
        for p in processors:
            provider.add_span_processor(p)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.shutdown()


# ------------------------------------------------------------------------------------------
# Span processors written in Python


def test_python_processor_sees_start_and_end(provider_for):
    processor = RecordingProcessor()
    resource = Resource.create({"service.name": "checkout"})
    provider = provider_for(processor, resource=resource)
    tracer = provider.get_tracer("lib", "2.0")
    link_ctx = trace.SpanContext(0xABC, 0xDEF, is_remote=True)
    before = time.time_ns()
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT,
                                          attributes={"at.start": 1},
                                          links=[Link(link_ctx, {"l": True})]) as child:
            child.set_attribute("later", "yes")
            child.add_event("evt", {"e": 1})
            child.set_status(StatusCode.ERROR, "failed")
    after = time.time_ns()
    assert processor.events == [("start", "parent"), ("start", "child"),
                                ("end", "child"), ("end", "parent")]
    # on_start gets the live span, still recording.
    assert processor.started == [parent, child]
    # on_end gets a ReadableSpan with everything recorded.
    ended_child, ended_parent = processor.ended
    assert isinstance(ended_child, ReadableSpan)
    assert ended_child.name == "child"
    assert ended_child.kind is SpanKind.CLIENT
    assert ended_child.context.trace_id == child.get_span_context().trace_id
    assert ended_child.context.span_id == child.get_span_context().span_id
    assert ended_child.parent.span_id == parent.get_span_context().span_id
    assert dict(ended_child.attributes) == {"at.start": 1, "later": "yes"}
    assert [(e.name, dict(e.attributes)) for e in ended_child.events] == [("evt", {"e": 1})]
    links = [(link.context.span_id, dict(link.attributes)) for link in ended_child.links]
    assert links == [(0xDEF, {"l": True})]
    assert ended_child.status.status_code is StatusCode.ERROR
    assert ended_child.status.description == "failed"
    assert before <= ended_child.start_time <= ended_child.end_time <= after
    assert ended_child.resource.attributes["service.name"] == "checkout"
    assert ended_child.instrumentation_scope.name == "lib"
    assert ended_child.instrumentation_scope.version == "2.0"
    assert ended_parent.name == "parent" and ended_parent.parent is None
    assert ended_parent.kind is SpanKind.SERVER
    assert ended_parent.end_time >= ended_child.end_time


def test_python_processor_with_start_span_and_explicit_context(provider_for):
    processor = RecordingProcessor()
    tracer = provider_for(processor).get_tracer(__name__)
    parent = tracer.start_span("parent")
    ctx = trace.set_span_in_context(parent)
    child = tracer.start_span("child", context=ctx)
    child.end()
    parent.end()
    assert processor.parent_contexts[1] is ctx
    assert processor.ended[0].parent.span_id == parent.get_span_context().span_id


def test_python_processor_can_enrich_on_start(provider_for):
    class Enricher(SpanProcessor):
        def on_start(self, span, parent_context=None):
            span.set_attribute("enriched", True)

    memory = InMemorySpanExporter()
    provider = provider_for(Enricher(), SimpleSpanProcessor(memory))
    with provider.get_tracer(__name__).start_as_current_span("op"):
        pass
    (finished,) = memory.get_finished_spans()
    assert finished.attributes["enriched"] is True


def test_python_processor_errors_do_not_reach_the_application(provider_for, caplog):
    class Broken(SpanProcessor):
        def on_start(self, span, parent_context=None):
            raise RuntimeError("on_start bug")

        def on_end(self, span):
            raise RuntimeError("on_end bug")

    after = RecordingProcessor()
    memory = InMemorySpanExporter()
    provider = provider_for(Broken(), after, SimpleSpanProcessor(memory))
    with provider.get_tracer(__name__).start_as_current_span("op") as span:
        assert span.is_recording()
    assert after.events == [("start", "op"), ("end", "op")]
    assert [s.name for s in memory.get_finished_spans()] == ["op"]


def test_span_ended_twice_reaches_python_processors_once(provider_for):
    processor = RecordingProcessor()
    provider = provider_for(processor)
    span = provider.get_tracer(__name__).start_span("twice")
    span.end()
    span.end()
    assert processor.events == [("start", "twice"), ("end", "twice")]


def test_provider_force_flush_and_shutdown_reach_python_processors(provider_for):
    processor = RecordingProcessor()
    provider = provider_for(processor)
    assert provider.force_flush() is True
    assert processor.flushes == 1
    provider.shutdown()
    provider.shutdown()
    assert processor.shutdowns == 1


# ------------------------------------------------------------------------------------------
# Exporters written in Python


def test_python_exporter_through_simple_processor(provider_for):
    exporter = ListExporter()
    provider = provider_for(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("outer", attributes={"a": 1}):
        with tracer.start_as_current_span("inner"):
            pass
        # Exported synchronously as each span ends, one span per call.
        assert exporter.names == ["inner"]
    assert [len(b) for b in exporter.batches] == [1, 1]
    assert exporter.names == ["inner", "outer"]
    assert set(exporter.threads) == {threading.get_ident()}
    inner, outer = (b[0] for b in exporter.batches)
    assert isinstance(outer, ReadableSpan)
    assert inner.parent.span_id == outer.context.span_id
    assert dict(outer.attributes) == {"a": 1}
    provider.shutdown()
    assert exporter.shutdowns == 1
    with tracer.start_as_current_span("after_shutdown"):
        pass
    assert exporter.names == ["inner", "outer"]


def test_python_exporter_through_batch_processor(provider_for):
    exporter = ListExporter()
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000, max_export_batch_size=3)
    provider = provider_for(processor)
    tracer = provider.get_tracer(__name__)
    for i in range(7):
        tracer.start_span(f"s{i}").end()
        if i == 1:
            # Below a batch and long before the delay: nothing is exported yet.
            assert exporter.batches == []
    assert provider.force_flush() is True
    names = exporter.names
    assert sorted(names) == [f"s{i}" for i in range(7)]
    assert names == [f"s{i}" for i in range(7)]  # in the order they ended
    assert all(len(b) <= 3 for b in exporter.batches)
    assert sum(len(b) for b in exporter.batches) == 7
    assert threading.get_ident() not in exporter.threads  # exported on the worker thread
    assert all(isinstance(s, ReadableSpan) for b in exporter.batches for s in b)
    stats = processor.stats()
    assert stats["spans_queued"] == 7
    assert stats["spans_exported"] == 7
    assert stats["spans_dropped"] == 0 and stats["spans_failed"] == 0
    assert stats["batches_exported"] == len(exporter.batches)
    assert stats["queue_length"] == 0


def test_batch_processor_exports_a_full_batch_without_flush(provider_for):
    exporter = ListExporter()
    provider = provider_for(
        BatchSpanProcessor(exporter, schedule_delay_millis=60_000, max_export_batch_size=2))
    tracer = provider.get_tracer(__name__)
    tracer.start_span("a").end()
    tracer.start_span("b").end()
    assert wait_for(lambda: exporter.names == ["a", "b"])


def test_batch_processor_exports_after_schedule_delay(provider_for):
    exporter = ListExporter()
    provider = provider_for(BatchSpanProcessor(exporter, schedule_delay_millis=20))
    provider.get_tracer(__name__).start_span("lonely").end()
    assert wait_for(lambda: exporter.names == ["lonely"])


def test_batch_processor_drops_when_queue_is_full(provider_for):
    exporter = BlockingExporter()
    processor = BatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=1,
                                   schedule_delay_millis=60_000)
    provider = provider_for(processor)
    tracer = provider.get_tracer(__name__)
    tracer.start_span("first").end()  # a full batch: the worker takes it and blocks
    assert exporter.entered.wait(5)
    for name in ("second", "third", "dropped1", "dropped2"):
        tracer.start_span(name).end()  # never blocks the application
    stats = processor.stats()
    assert stats["spans_dropped"] == 2
    assert stats["queue_length"] == 2
    # A flush cannot finish while the exporter hangs...
    started = time.monotonic()
    assert processor.force_flush(timeout_millis=100) is False
    assert time.monotonic() - started < 5
    # ...and does once it returns.
    exporter.release.set()
    assert provider.force_flush() is True
    assert exporter.names == ["first", "second", "third"]
    assert processor.stats()["spans_exported"] == 3


def test_failed_export_is_counted_not_raised(provider_for):
    exporter = ListExporter(result=SpanExportResult.FAILURE)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = provider_for(processor)
    provider.get_tracer(__name__).start_span("s").end()
    assert provider.force_flush() is True
    stats = processor.stats()
    assert stats["spans_failed"] == 1 and stats["batches_failed"] == 1
    assert stats["spans_exported"] == 0


def test_exporter_exception_is_not_raised_into_the_application(provider_for, monkeypatch):
    reported = []
    monkeypatch.setattr("sys.unraisablehook", lambda info: reported.append(info.exc_value))

    class Raising(SpanExporter):
        def export(self, spans):
            raise RuntimeError("exporter bug")

    simple = provider_for(SimpleSpanProcessor(Raising()))
    with simple.get_tracer(__name__).start_as_current_span("op"):
        pass
    batch_processor = BatchSpanProcessor(Raising(), schedule_delay_millis=60_000)
    batch = provider_for(batch_processor)
    batch.get_tracer(__name__).start_span("op").end()
    assert batch.force_flush() is True
    assert batch_processor.stats()["spans_failed"] == 1
    assert [str(e) for e in reported] == ["exporter bug", "exporter bug"]


def test_several_processors_each_get_every_span(provider_for):
    simple_exporter, batch_exporter = ListExporter(), ListExporter()
    memory = InMemorySpanExporter()
    provider = provider_for(SimpleSpanProcessor(simple_exporter), SimpleSpanProcessor(memory),
                            BatchSpanProcessor(batch_exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("op") as span:
        span.set_attribute("k", "v")
    provider.force_flush()
    for names in (simple_exporter.names, batch_exporter.names,
                  [s.name for s in memory.get_finished_spans()]):
        assert names == ["op"]
    assert batch_exporter.batches[0][0].attributes["k"] == "v"
    assert memory.get_finished_spans()[0].attributes["k"] == "v"


def test_in_memory_exporter_clear(provider_for):
    memory = InMemorySpanExporter()
    tracer = provider_for(SimpleSpanProcessor(memory)).get_tracer(__name__)
    tracer.start_span("a").end()
    assert [s.name for s in memory.get_finished_spans()] == ["a"]
    assert [s.name for s in memory.get_finished_spans()] == ["a"]  # reading does not consume
    memory.clear()
    assert memory.get_finished_spans() == ()
    tracer.start_span("b").end()
    assert [s.name for s in memory.get_finished_spans()] == ["b"]


# ------------------------------------------------------------------------------------------
# Shutdown


def test_shutdown_exports_pending_spans_then_stops(provider_for):
    exporter = ListExporter()
    provider = provider_for(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer(__name__)
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    assert exporter.batches == []
    provider.shutdown()
    assert exporter.names == [f"s{i}" for i in range(5)]
    assert exporter.shutdowns == 1
    # After shutdown: spans still work for the application, nothing is exported.
    with tracer.start_as_current_span("late") as span:
        span.set_attribute("k", 1)
    tracer.start_span("late2").end()
    provider.force_flush()
    provider.shutdown()
    assert exporter.names == [f"s{i}" for i in range(5)]
    assert exporter.shutdowns == 1


def test_processor_shutdown_is_idempotent(provider_for):
    exporter = ListExporter()
    processor = BatchSpanProcessor(exporter)
    provider = provider_for(processor)
    provider.get_tracer(__name__).start_span("s").end()
    processor.shutdown()
    processor.shutdown()
    assert exporter.names == ["s"]
    assert exporter.shutdowns == 1
    provider.shutdown()
    assert exporter.shutdowns == 1


def test_spans_ended_at_interpreter_exit_are_exported():
    """shutdown_on_exit: a pending batch is exported, then the exporter shut down, at exit."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from djtrace.sdk import TracerProvider, BatchSpanProcessor, SpanExporter, SpanExportResult

        class Printer(SpanExporter):
            def export(self, spans):
                for s in spans:
                    print("exported", s.name, flush=True)
                return SpanExportResult.SUCCESS
            def shutdown(self):
                print("shutdown", flush=True)

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Printer(), schedule_delay_millis=60000))
        trace.set_tracer_provider(provider)
        with trace.get_tracer(__name__).start_as_current_span("at_exit"):
            pass
        print("main done", flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main done", "exported at_exit", "shutdown"]


@pytest.mark.parametrize("exporter", ["InMemorySpanExporter()", "PythonExporter()"])
@pytest.mark.parametrize("processor", ["BatchSpanProcessor", "SimpleSpanProcessor"])
def test_interpreter_exit_is_quiet(processor, exporter):
    """An application that set a djtrace provider prints nothing extra when it exits."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        from opentelemetry import trace
        from djtrace.sdk import (TracerProvider, BatchSpanProcessor, SimpleSpanProcessor,
                                 InMemorySpanExporter, SpanExporter, SpanExportResult)

        class PythonExporter(SpanExporter):
            def export(self, spans):
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor({processor}({exporter}))
        trace.set_tracer_provider(provider)
        with trace.get_tracer(__name__).start_as_current_span("op"):
            pass
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")


def test_exit_with_exports_still_running_does_not_abort():
    """Workers whose exports outlive the shutdown at exit (a collector that accepts connections
    and never answers) log their failures: they must not be waiting for the GIL while the
    interpreter finalizes, which CPython answers by ending the thread and the process aborted.
    Eight workers at once made that happen in most runs."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import socket
        from opentelemetry import trace
        from djtrace.sdk import TracerProvider, BatchSpanProcessor
        from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete, nothing is ever read or answered
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/traces"
        provider = TracerProvider()
        for _ in range(8):
            provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, timeout=5), max_queue_size=4096,
                max_export_batch_size=16, export_timeout_millis=300))
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer(__name__)
        for _ in range(512):
            tracer.start_span("s").end()
        """
    )
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "terminate" not in proc.stderr
        # The workers did call into Python at exit: each logged its failure, a timeout or
        # (once the exporter is shut down under it) the spans it drops; which one depends on
        # how far the export got before the shutdown.
        assert ("timed out waiting for the response" in proc.stderr
                or "is shut down; dropping the spans handed to it since" in proc.stderr)


# ------------------------------------------------------------------------------------------
# BatchSpanProcessor settings


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(max_queue_size=0), "max_queue_size"),
        (dict(max_queue_size=-5), "max_queue_size"),
        (dict(max_queue_size="10"), "max_queue_size"),
        (dict(max_queue_size=True), "max_queue_size"),
        (dict(max_queue_size=10.5), "max_queue_size"),
        (dict(max_export_batch_size=0), "max_export_batch_size"),
        (dict(max_export_batch_size=None, max_queue_size=10), "max_export_batch_size"),
        (dict(max_queue_size=10, max_export_batch_size=11), "max_export_batch_size"),
        (dict(schedule_delay_millis=-1), "schedule_delay_millis"),
        (dict(schedule_delay_millis="soon"), "schedule_delay_millis"),
        (dict(export_timeout_millis=-1), "export_timeout_millis"),
        (dict(export_timeout_millis="long"), "export_timeout_millis"),
        (dict(export_timeout_millis=float("nan")), "export_timeout_millis"),
        (dict(schedule_delay_millis=-0.5), "schedule_delay_millis"),
    ],
)
def test_batch_processor_rejects_bad_arguments(kwargs, named):
    with pytest.raises(ConfigError, match=named) as info:
        BatchSpanProcessor(ListExporter(), **kwargs)
    assert isinstance(info.value, ValueError)  # what opentelemetry-sdk raises


def test_batch_processor_accepts_good_arguments(provider_for):
    exporter = ListExporter()
    processor = BatchSpanProcessor(exporter, max_queue_size=10, schedule_delay_millis=12.0,
                                   max_export_batch_size=10, export_timeout_millis=500)
    assert (processor.max_queue_size, processor.schedule_delay_millis,
            processor.max_export_batch_size) == (10, 12, 10)
    processor.shutdown()
    defaults = BatchSpanProcessor(exporter)
    assert (defaults.max_queue_size, defaults.schedule_delay_millis,
            defaults.max_export_batch_size) == (2048, 5000, 512)
    defaults.shutdown()


def test_batch_processor_reads_env(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", " 100 ")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")
    processor = BatchSpanProcessor(ListExporter())
    assert (processor.max_queue_size, processor.schedule_delay_millis,
            processor.max_export_batch_size,
            processor._export_timeout_millis) == (100, 250, 20, 1000)
    processor.shutdown()
    # Arguments win over the environment.
    processor = BatchSpanProcessor(ListExporter(), max_queue_size=50, max_export_batch_size=5)
    assert (processor.max_queue_size, processor.max_export_batch_size) == (50, 5)
    assert processor.schedule_delay_millis == 250
    processor.shutdown()


@pytest.mark.parametrize(
    "name, value",
    [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1.5"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "never"),
    ],
)
def test_batch_processor_bad_env_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as info:
        BatchSpanProcessor(ListExporter())
    assert repr(value) in str(info.value)


def test_batch_processor_empty_env_means_default(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "  ")
    processor = BatchSpanProcessor(ListExporter())
    assert (processor.max_queue_size, processor.schedule_delay_millis) == (2048, 5000)
    processor.shutdown()


def test_batch_env_queue_smaller_than_default_batch_is_reported(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    with pytest.raises(ConfigError, match="max_export_batch_size"):
        BatchSpanProcessor(ListExporter())


def test_batch_env_on_a_fresh_global_provider():
    out = run_python(
        """
        import json, threading, time
        from opentelemetry import trace
        from djtrace.sdk import TracerProvider, BatchSpanProcessor, SpanExporter, SpanExportResult

        batches = []
        class Collect(SpanExporter):
            def export(self, spans):
                batches.append([s.name for s in spans])
                return SpanExportResult.SUCCESS

        processor = BatchSpanProcessor(Collect())
        provider = TracerProvider()
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer(__name__)
        for i in range(5):
            tracer.start_span(str(i)).end()
        deadline = time.monotonic() + 10
        while sum(map(len, batches)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = processor.stats()
        print(json.dumps({"batches": batches, "dropped": stats["spans_dropped"],
                          "settings": [processor.max_queue_size, processor.max_export_batch_size,
                                       processor.schedule_delay_millis]}))
        """,
        env={"OTEL_BSP_MAX_QUEUE_SIZE": "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2",
             "OTEL_BSP_SCHEDULE_DELAY": "60000"},
    )
    assert out["settings"] == [4, 2, 60000]
    # Full batches of two are exported without waiting for the 60 s delay.
    assert [len(b) for b in out["batches"]][:2] == [2, 2]
