"""Fixtures for the OpenTelemetry API surface running on djtrace.

The global tracer provider can be set once per process, so one djtrace provider is installed
for the whole session and its in-memory exporter is cleared before each test. Tests that need
a provider of their own (span processors or samplers written in Python, limits, shutdown) build
one and call provider.get_tracer() directly; tests that need environment variables read at
start-up or a fresh global provider run in a subprocess (run_python).
"""

from __future__ import annotations

import pytest
from opentelemetry import trace

from djtrace.sdk import InMemorySpanExporter, SimpleSpanProcessor, TracerProvider

from ._helpers import RecordingProcessor, SampleEverything, Setup

_session_exporter = InMemorySpanExporter()


def _install_global_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider, "another provider was set first"
    provider.add_span_processor(SimpleSpanProcessor(_session_exporter))
    return provider


@pytest.fixture(scope="session")
def global_provider() -> TracerProvider:
    """The djtrace provider installed with trace.set_tracer_provider for the whole session."""
    return _install_global_provider()


@pytest.fixture
def exporter(global_provider) -> InMemorySpanExporter:
    """The global provider's in-memory exporter, empty at the start of the test."""
    _session_exporter.clear()
    yield _session_exporter
    _session_exporter.clear()


@pytest.fixture
def tracer(exporter) -> trace.Tracer:
    """A tracer obtained the way application code obtains one: through the global API."""
    return trace.get_tracer(__name__)


@pytest.fixture(autouse=True)
def _no_leaked_current_span():
    """Every test starts and ends with no current span: context tokens must be detached."""
    assert trace.get_current_span() is trace.INVALID_SPAN
    yield
    assert trace.get_current_span() is trace.INVALID_SPAN, "a span was left attached"


@pytest.fixture
def make_provider():
    """Builds a private djtrace provider exporting to its own in-memory exporter."""
    made: list[TracerProvider] = []

    def make(**kwargs) -> tuple[TracerProvider, InMemorySpanExporter]:
        processors = kwargs.pop("processors", ())
        provider = TracerProvider(shutdown_on_exit=False, **kwargs)
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for p in processors:
            provider.add_span_processor(p)
        made.append(provider)
        return provider, memory

    yield make
    for provider in made:
        provider.shutdown()


@pytest.fixture(params=["native", "python_processor", "python_sampler"])
def setup(request, exporter, global_provider, make_provider) -> Setup:
    """The same API, through each of djtrace's three code paths.

    native: the global provider, only native processors (start_as_current_span is native).
    python_processor: a span processor written in Python (spans end through Python).
    python_sampler: a sampler written in Python (sampling decided in Python).
    """
    if request.param == "native":
        return Setup("native", trace.get_tracer(__name__), exporter, global_provider)
    if request.param == "python_processor":
        provider, memory = make_provider(processors=[RecordingProcessor()])
    else:
        provider, memory = make_provider(sampler=SampleEverything())
    return Setup(request.param, provider.get_tracer(__name__), memory, provider)


@pytest.fixture
def official():
    """The official opentelemetry-sdk, not installed globally: the reference behaviour."""
    from opentelemetry.sdk.trace import TracerProvider as OfficialProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as OfficialSimple
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter as OfficialMemory,
    )

    made = []

    def make(**kwargs):
        provider = OfficialProvider(shutdown_on_exit=False, **kwargs)
        memory = OfficialMemory()
        provider.add_span_processor(OfficialSimple(memory))
        made.append(provider)
        return provider, memory

    yield make
    for provider in made:
        provider.shutdown()


