"""Same import path as opentelemetry.sdk.trace.export.in_memory_span_exporter."""

from djtrace.sdk.trace.export import InMemorySpanExporter

__all__ = ["InMemorySpanExporter"]
