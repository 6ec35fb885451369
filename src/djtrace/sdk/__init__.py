"""djtrace's OpenTelemetry SDK: the official SDK's classes and arguments, recorded natively.

Every name the guide imports from opentelemetry.sdk is available here, so migrating is a
matter of import lines:

    from djtrace.sdk import (TracerProvider, BatchSpanProcessor, Resource, ParentBased,
                             TraceIdRatioBased, OTLPSpanExporter)
"""

from djtrace.sdk.resources import Resource
from djtrace.sdk.trace import (
    ReadableSpan,
    Span,
    SpanLimits,
    SpanProcessor,
    Tracer,
    TracerProvider,
)
from djtrace.sdk.trace.export import (
    BatchSpanProcessor,
    InMemorySpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from djtrace.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

__all__ = [
    "ALWAYS_OFF",
    "ALWAYS_ON",
    "BatchSpanProcessor",
    "Decision",
    "InMemorySpanExporter",
    "ParentBased",
    "ParentBasedTraceIdRatio",
    "ReadableSpan",
    "Resource",
    "Sampler",
    "SamplingResult",
    "SimpleSpanProcessor",
    "Span",
    "SpanExportResult",
    "SpanExporter",
    "SpanLimits",
    "SpanProcessor",
    "TraceIdRatioBased",
    "Tracer",
    "TracerProvider",
]
