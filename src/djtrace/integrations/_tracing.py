"""What the Celery, Redis and logging integrations share to record spans cheaply.

An integration cannot hold on to a tracer at import: the global tracer provider is often set
later (djtrace.configure() in a settings module, a worker's start-up), may be djtrace's or any
other SDK's, and may gain a span processor or sampler written in Python after the fact. So each
integration keeps a `TracerHandle`, which looks the provider up on every use (one global read)
and says how to record:

- NATIVE: djtrace's provider with nothing written in Python in the way. A span starts with one
  native call (`Tracer._start_span_native`) given its parent directly, a remote parent as a
  context tuple, without building any OpenTelemetry context object.
- GENERIC: any other recording provider (the official SDK, or djtrace's with a Python sampler or
  processor that must see every span). The public OpenTelemetry API is used throughout.
- OFF: no provider installed yet (the API's proxy) or OTEL_SDK_DISABLED: record nothing.

Propagation follows the same idea: when the global propagator is W3C trace context and/or
baggage (what djtrace.configure() and the OpenTelemetry defaults install), `traceparent` is
formatted and parsed natively; any other propagator goes through `propagate.inject/extract`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState

from djtrace import _native
from djtrace.sdk.trace import (
    DisabledTracerProvider,
    _report_internal_error,
)
from djtrace.sdk.trace import TracerProvider as _DjtraceProvider

OFF = 0
NATIVE = 1
GENERIC = 2

# OTLP span kinds, as Tracer._start_span_native takes them.
OTLP_INTERNAL = 1
OTLP_SERVER = 2
OTLP_CLIENT = 3
OTLP_PRODUCER = 4
OTLP_CONSUMER = 5
_API_KINDS = {
    OTLP_INTERNAL: SpanKind.INTERNAL,
    OTLP_SERVER: SpanKind.SERVER,
    OTLP_CLIENT: SpanKind.CLIENT,
    OTLP_PRODUCER: SpanKind.PRODUCER,
    OTLP_CONSUMER: SpanKind.CONSUMER,
}

# Span flags of the native span (native/python/common.h: SpanFlags).
ATTACH = 1
END_ON_EXIT = 2

current_span = _native.current_span
_get_provider = trace_api.get_tracer_provider
_ProxyProvider = trace_api.ProxyTracerProvider


class TracerHandle:
    """The tracer of one integration, resolved from the global provider when used."""

    __slots__ = ("_name", "_version", "_provider", "_tracer", "_kind")

    def __init__(self, name: str, version: str | None = None) -> None:
        self._name = name
        self._version = version
        self._provider: Any = None
        self._tracer: Any = None
        self._kind = OFF

    def _bind(self, provider: Any) -> None:
        if isinstance(provider, (_ProxyProvider, DisabledTracerProvider)):
            # Not configured yet (looked up again next time) or disabled on purpose.
            self._provider, self._tracer, self._kind = provider, None, OFF
            return
        tracer = provider.get_tracer(self._name, self._version)
        kind = NATIVE if isinstance(provider, _DjtraceProvider) else GENERIC
        self._provider, self._tracer, self._kind = provider, tracer, kind

    def mode(self) -> int:
        """OFF, NATIVE or GENERIC for the provider installed now (see the module docstring)."""
        provider = _get_provider()
        if provider is not self._provider:
            self._bind(provider)
        kind = self._kind
        if kind == NATIVE and (provider._py_sampler is not None or provider._py_processors):
            return GENERIC
        return kind

    @property
    def tracer(self) -> Any:
        return self._tracer

    @property
    def provider(self) -> Any:
        return self._provider

    def start_native(self, name: str, parent: Any, kind: int, flags: int = 0) -> Any:
        """A span with `parent` (a span, a context tuple or None for a root); NATIVE mode only."""
        return self._tracer._start_span_native(name, parent, kind, None, None, None, flags)

    def start_generic(self, name: str, context: Any, kind: int, attributes: Any = None) -> Any:
        """A span through the public API; `context` is an OpenTelemetry Context or None."""
        return self._tracer.start_span(name, context=context, kind=_API_KINDS[kind],
                                       attributes=attributes)


def flush_before_exit(timeout_millis: int, where: str) -> bool:
    """Exports every finished span now, as the process is about to exit (a management command's
    end, a Celery process leaving): djtrace's provider tries each batch once (`exit_flush`), so
    that a collector that is down does not hold the exit up. Never raises; a failure is reported
    as `where`."""
    provider = trace_api.get_tracer_provider()
    if getattr(provider, "force_flush", None) is None:
        import djtrace

        provider = djtrace._provider  # noqa: SLF001 - configured but not global
    flush = getattr(provider, "exit_flush", None) or getattr(provider, "force_flush", None)
    if flush is None:
        return True
    try:
        return bool(flush(timeout_millis))
    except Exception:  # noqa: BLE001
        _report_internal_error(where)
        return False


def remote_parent_context(parent: tuple, base: Any = None) -> Any:
    """An OpenTelemetry Context whose span is the remote parent `parent` (a context tuple)."""
    trace_id, span_id, flags, _remote, state = parent
    span_context = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else None,
    )
    return trace_api.set_span_in_context(NonRecordingSpan(span_context), base)


def attach_generic(span: Any) -> Any:
    """Makes `span` current (GENERIC mode); returns the token for `context_api.detach`."""
    return context_api.attach(trace_api.set_span_in_context(span))


# ---------------------------------------------------------------------------------------------
# Propagation

TRACECONTEXT = 1
BAGGAGE = 2
CUSTOM = -1

_propagation_cache: list = [None, CUSTOM]
_baggage_propagator = W3CBaggagePropagator()


def propagation() -> int:
    """A bit set of TRACECONTEXT and BAGGAGE when the global propagator is W3C only (so the
    fast paths below apply), or CUSTOM when anything else is installed."""
    textmap = propagate.get_global_textmap()
    cache = _propagation_cache
    if textmap is cache[0]:
        return cache[1]
    members = textmap._propagators if type(textmap) is CompositePropagator else [textmap]
    kind = 0
    for member in members:
        if type(member) is TraceContextTextMapPropagator:
            kind |= TRACECONTEXT
        elif type(member) is W3CBaggagePropagator:
            kind |= BAGGAGE
        else:
            kind = CUSTOM
            break
    cache[0], cache[1] = textmap, kind
    return kind


def format_traceparent(context_tuple: tuple) -> str:
    trace_id, span_id, flags = context_tuple[0], context_tuple[1], context_tuple[2]
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}"


def inject_w3c(carrier: MutableMapping[str, Any], span: Any, kind: int) -> None:
    """Writes traceparent/tracestate of `span` (a native span) and the current baggage into
    `carrier`, as the W3C propagators would, without building OpenTelemetry objects."""
    if kind & TRACECONTEXT:
        t = span._context_tuple()
        carrier["traceparent"] = format_traceparent(t)
        if t[4]:
            carrier["tracestate"] = t[4]
    if kind & BAGGAGE and context_api.get_current().get(_BAGGAGE_KEY):
        _baggage_propagator.inject(carrier)


def parse_parent(traceparent: Any, tracestate: Any) -> tuple | None:
    """The remote parent as a context tuple (trace_id, span_id, flags, True, tracestate), or
    None when `traceparent` is absent or malformed."""
    if not traceparent or type(traceparent) is not str:
        return None
    parsed = _native.parse_traceparent(traceparent)
    if parsed is None:
        return None
    state = ""
    if tracestate and type(tracestate) is str:
        state = _native.normalize_tracestate(tracestate) or ""
    return (parsed[0], parsed[1], parsed[2], True, state)


def baggage_context(header: str, base: Any = None) -> Any:
    """The context `base` (current when None) with the entries of a W3C baggage header."""
    return _baggage_propagator.extract({"baggage": header}, base)
