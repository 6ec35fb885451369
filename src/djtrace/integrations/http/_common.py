"""What the HTTP client integrations share: when to record, the CLIENT span and the injection
of the trace context into the outgoing headers.

A client span is named after the method (`GET`, as the HTTP semantic conventions name client
spans without a URL template) and carries http.request.method, url.full (credentials and
sensitive query values redacted), server.address, server.port, http.response.status_code;
a status of 500 or more, or an exception, sets error.type and an error status. With
OTEL_SEMCONV_STABILITY_OPT_IN=http/dup the old names (http.method, http.url,
http.status_code, net.peer.name, net.peer.port) are emitted too.

While the wrapped call runs, the OpenTelemetry "suppress HTTP instrumentation" key is set, so
a lower layer (urllib3 under requests, or an official instrumentation) does not make a second
span; a call made while that key is set (by us or by an official instrumentation that wraps
ours) is not recorded either.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, StatusCode

from djtrace import _native
from djtrace._version import __version__
from djtrace.integrations import _suppress

try:
    from opentelemetry.context import (
        _SUPPRESS_HTTP_INSTRUMENTATION_KEY as SUPPRESS_HTTP_KEY,
    )
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as SUPPRESS_KEY
except ImportError:  # pragma: no cover - opentelemetry-api always has them
    SUPPRESS_HTTP_KEY = "suppress_http_instrumentation"
    SUPPRESS_KEY = "suppress_instrumentation"

SCOPE = "djtrace.http"


class _State:
    tracer: Any = None
    semconv_old: bool | None = None
    enabled: bool = True


state = _State()


def tracer() -> Any:
    t = state.tracer
    if t is None:
        provider = trace_api.get_tracer_provider()
        if isinstance(provider, trace_api.ProxyTracerProvider):
            import djtrace

            if djtrace._provider is not None:  # noqa: SLF001
                provider = djtrace._provider  # noqa: SLF001
        t = state.tracer = provider.get_tracer(SCOPE, __version__)
    return t


def semconv_old() -> bool:
    flag = state.semconv_old
    if flag is None:
        opt_in = {p.strip().lower()
                  for p in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
        flag = state.semconv_old = "http/dup" in opt_in
    return flag


def reset() -> None:
    """Forgets cached environment and tracer (tests)."""
    state.tracer = None
    state.semconv_old = None


def should_record() -> bool:
    if not state.enabled or _suppress.SUPPRESSED.get():
        return False
    ctx = context_api.get_current()
    return not (ctx.get(SUPPRESS_HTTP_KEY) or ctx.get(SUPPRESS_KEY))


def client_attributes(method: str, url: str) -> tuple[str, dict]:
    """(span name, attributes known before the call): method, redacted url.full, server.address
    and server.port as urlsplit finds them (native: native/http/client_request.h)."""
    return _native.client_request_attributes(method or "", url, bool(semconv_old()))


class ClientCall:
    """One outgoing request: the span, the context attached around the call (span current,
    lower HTTP layers suppressed) and the headers to inject."""

    __slots__ = ("span", "token")

    def __init__(self, method: str, url: str) -> None:
        name, attrs = client_attributes(method, url)
        self.span = tracer().start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        ctx = trace_api.set_span_in_context(self.span)
        ctx = context_api.set_value(SUPPRESS_HTTP_KEY, True, ctx)
        self.token = context_api.attach(ctx)

    def inject(self, carrier: Any) -> None:
        """Writes traceparent (and tracestate, baggage) with the global propagator."""
        propagate.inject(carrier)

    def finish(self, status: int | None = None, exc: BaseException | None = None) -> None:
        span = self.span
        try:
            context_api.detach(self.token)
        except Exception:  # noqa: BLE001
            pass
        try:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
                if semconv_old():
                    span.set_attribute("http.status_code", status)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(StatusCode.ERROR)
            if exc is not None:
                cls = type(exc)
                span.record_exception(exc)
                span.set_attribute("error.type", f"{cls.__module__}.{cls.__qualname__}")
                span.set_status(StatusCode.ERROR, f"{cls.__name__}: {exc}")
        finally:
            span.end()


def applied_by_official(func: Any) -> bool:
    """True when `func` is already wrapped by an official OpenTelemetry instrumentation."""
    if getattr(func, "opentelemetry_instrumentation_requests_applied", False):
        return True
    wrapper = getattr(func, "_self_wrapper", None)  # wrapt's FunctionWrapper
    module = getattr(wrapper, "__module__", "") or ""
    return module.startswith("opentelemetry.instrumentation")
