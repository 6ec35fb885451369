"""State shared by the Django integration's modules: the tracer, the request and local-root
context variables, and the rules that say which exceptions are errors.

Context variables follow a request through sync_to_async / async_to_sync threads and asyncio
tasks (both copy the context), so every layer finds its request with one `get()`.
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, StatusCode

from djtrace import _native
from djtrace._version import __version__

SCOPE = "djtrace.django"
KIND_INTERNAL = SpanKind.INTERNAL
KIND_SERVER = SpanKind.SERVER
KIND_CLIENT = SpanKind.CLIENT
STATUS_ERROR = StatusCode.ERROR

#: The request being traced in this context (a handlers.RequestSpan), None outside requests
#: and in excluded requests. Layers that only make sense inside a request (middleware, views,
#: DRF) do nothing without it.
REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("djtrace_request", default=None)

#: The local root djtrace started in this context (request or management command), for
#: per-root statistics such as repeated cache reads.
ROOT: contextvars.ContextVar[RootState | None] = contextvars.ContextVar(
    "djtrace_root", default=None)


#: The tracer of the Django integration once fetched. The native wrappers read it from this
#: module's dict (this module is the "holder" they are given).
_tracer: Any = None


def tracer() -> Any:
    """The tracer of the Django integration (from the global provider, fetched once)."""
    global _tracer
    t = _tracer
    if t is None:
        t = _tracer = _get_tracer()
    return t


def _get_tracer() -> Any:
    provider = trace_api.get_tracer_provider()
    if isinstance(provider, trace_api.ProxyTracerProvider):
        import djtrace

        if djtrace._provider is not None:  # noqa: SLF001 - configured but not global
            provider = djtrace._provider  # noqa: SLF001
    return provider.get_tracer(SCOPE, __version__)


def reset_tracer() -> None:
    """Forgets the cached tracer (tests that install another global provider)."""
    global _tracer
    _tracer = None


class RootState:
    """The local root (request or command) djtrace started in this context: the database and
    cache integrations attach the root's native statistics (queries, N+1s, repeated cache
    reads) to its span when they first need them."""

    __slots__ = ("span",)

    def __init__(self, span: Any) -> None:
        self.span = span


# Exceptions Django turns into 4xx responses: not errors of the server.
_CLIENT_ERROR_TYPES: tuple = ()


def _client_error_types() -> tuple:
    global _CLIENT_ERROR_TYPES
    if not _CLIENT_ERROR_TYPES:
        from django.core.exceptions import (
            BadRequest,
            PermissionDenied,
            RequestDataTooBig,
            SuspiciousOperation,
            TooManyFieldsSent,
        )
        from django.http import Http404
        from django.http.multipartparser import MultiPartParserError
        from django.urls import Resolver404

        types: list = [Http404, Resolver404, PermissionDenied, BadRequest, SuspiciousOperation,
                       MultiPartParserError, RequestDataTooBig, TooManyFieldsSent]
        _CLIENT_ERROR_TYPES = tuple(types)
    return _CLIENT_ERROR_TYPES


def exception_status(exc: BaseException) -> int:
    """The HTTP status an exception will become (500 unless Django or DRF says otherwise)."""
    if isinstance(exc, _client_error_types()):
        from django.http import Http404

        if isinstance(exc, Http404):
            return 404
        from django.core.exceptions import PermissionDenied

        return 403 if isinstance(exc, PermissionDenied) else 400
    code = getattr(exc, "status_code", None)  # DRF's APIException and the like
    if isinstance(code, int) and 100 <= code <= 599:
        return code
    return 500


def record_error(span: Any, exc: BaseException) -> None:
    """Marks `span` as failed by `exc`, unless the exception means a 4xx response."""
    if exception_status(exc) < 500:
        return
    try:
        span.record_exception(exc)
        span.set_attribute("error.type", qualified_name(type(exc)))
        span.set_status(STATUS_ERROR, f"{type(exc).__name__}: {exc}")
    except Exception:  # noqa: BLE001
        from djtrace.sdk.trace import _report_internal_error

        _report_internal_error("django record_error")


#: traced_call mode: exceptions go to record_error (4xx-mapped ones are not errors).
DJANGO_ERRORS = 1


def _traced_call_python(tracer: Any, name: str, attributes: Any, mode: int, fn: Any,
                        *args: Any, **kwargs: Any) -> Any:
    """traced_call for a tracer that is not djtrace's native one (or whose provider runs a
    sampler or span processor written in Python): the same thing through the API."""
    if mode & DJANGO_ERRORS:
        with tracer.start_as_current_span(name, attributes=attributes, record_exception=False,
                                          set_status_on_exception=False) as span:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                record_error(span, exc)
                raise
    with tracer.start_as_current_span(name, attributes=attributes):
        return fn(*args, **kwargs)


_native.set_traced_call_hooks(record_error, _traced_call_python, REQUEST)
#: traced_call(tracer, name, attributes, mode, fn, *args, **kwargs): fn(*args, **kwargs) in a
#: new current INTERNAL span, in one native call.
traced_call = _native.traced_call


def qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"
