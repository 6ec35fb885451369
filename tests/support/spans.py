"""The process-wide tracer provider of in-process integration tests.

The global provider can be set once per process: the first user installs a djtrace
TracerProvider (or finds one installed by another suite) and adds one in-memory exporter to it,
which tests clear and read.
"""

from __future__ import annotations

from opentelemetry import trace

from djtrace.sdk import InMemorySpanExporter, SimpleSpanProcessor, TracerProvider

_exporter: InMemorySpanExporter | None = None


def global_memory_exporter() -> InMemorySpanExporter:
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
            assert trace.get_tracer_provider() is provider, "another provider was set first"
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


def redis_running(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
