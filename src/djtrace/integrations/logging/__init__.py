"""Log correlation: every log record carries the ids of the span current when it was made.

Installed by wrapping logging's record factory (so it works with any handler, formatter and
logging configuration, Celery's and Django's included, in web processes, workers and
management commands). Each record gets these attributes:

    otelTraceID       32 hex digits, "0" outside any span   (the names of the official
    otelSpanID        16 hex digits, "0" outside any span    opentelemetry-instrumentation-
    otelTraceSampled  True / False                           logging, so existing formats and
    otelServiceName   service.name of the tracer provider    log pipelines keep working)
    trace_id, span_id aliases of otelTraceID / otelSpanID
    trace_flags       W3C trace flags as two hex digits ("01" sampled, "00" not)

The cost per record is one native read of the current span; the ids of a span are formatted
once and reused for the following records made in the same span.

A format that prints them (LOG_FORMAT below)::

    LOGGING = {"formatters": {"traced": {"format": djtrace.integrations.logging.LOG_FORMAT}}}

Celery: `worker_log_format` / `worker_task_log_format` may use the same names, e.g.
CELERY_WORKER_TASK_LOG_FORMAT = "[%(asctime)s: %(levelname)s] %(task_name)s[%(task_id)s]
trace_id=%(otelTraceID)s: %(message)s".

Gunicorn's access log is written after the response, outside the request's span: see
djtrace.integrations.logging.gunicorn.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import trace as trace_api

from djtrace import _native

__all__ = ["install", "uninstall", "is_installed", "LOG_FORMAT", "span_ids", "remember_request",
           "ENVIRON_TRACE_ID", "ENVIRON_SPAN_ID", "ENVIRON_SAMPLED"]

LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
    "resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s] - %(message)s"
)

_NativeSpan = _native.Span
_current_span = _native.current_span
_get_provider = trace_api.get_tracer_provider
_lock = threading.Lock()
_installed = False

_NO_SPAN = ("0", "0", False, "00")
# The last span seen and its formatted ids: (span, trace id, span id, sampled, flags). Holding
# the span keeps its identity from being reused while it is in the cache.
_last: tuple = (None,) + _NO_SPAN
# (provider, service name): looked up again only when the global provider changes.
_service: tuple = (None, "")


def span_ids(span: Any) -> tuple:
    """(trace id, span id, sampled, flags) of `span` as logged, ("0", "0", False, "00") for
    None or an invalid span."""
    global _last
    if span is None:
        return _NO_SPAN
    last = _last
    if last[0] is span:
        return last[1:]
    if type(span) is _NativeSpan:
        context = span._context_tuple()
        trace_id, span_id, flags = context[0], context[1], context[2]
    else:
        context = span.get_span_context()
        trace_id, span_id, flags = context.trace_id, context.span_id, int(context.trace_flags)
    if not trace_id or not span_id:
        return _NO_SPAN
    ids = (f"{trace_id:032x}", f"{span_id:016x}", bool(flags & 1), f"{flags & 0xFF:02x}")
    _last = (span,) + ids
    return ids


# WSGI environ keys holding a request's ids after its span has ended (Gunicorn's access log,
# see gunicorn.py); `%({djtrace.trace_id}e)s` prints the first in any Gunicorn format.
ENVIRON_TRACE_ID = "djtrace.trace_id"
ENVIRON_SPAN_ID = "djtrace.span_id"
ENVIRON_SAMPLED = "djtrace.trace_sampled"


def remember_request(environ: Any, span: Any) -> None:
    """Stores the ids of a request's root span in its WSGI environ, for the access log written
    after the span has ended. The Django request integration does the same natively for each
    request Gunicorn serves while this integration is installed."""
    trace_id, span_id, sampled, _flags = span_ids(span)
    if trace_id != "0":
        environ[ENVIRON_TRACE_ID] = trace_id
        environ[ENVIRON_SPAN_ID] = span_id
        environ[ENVIRON_SAMPLED] = "true" if sampled else "false"


def _service_name() -> str:
    global _service
    provider = _get_provider()
    cached = _service
    if cached[0] is provider:
        return cached[1]
    name = ""
    resource = getattr(provider, "resource", None)
    if resource is not None:
        try:
            name = str(resource.attributes.get("service.name", "") or "")
        except Exception:  # noqa: BLE001
            name = ""
    _service = (provider, name)
    return name


def _wrap(factory: Any) -> Any:
    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            trace_id, span_id, sampled, flags = span_ids(_current_span())
            d = record.__dict__
            d["otelTraceID"] = d["trace_id"] = trace_id
            d["otelSpanID"] = d["span_id"] = span_id
            d["otelTraceSampled"] = sampled
            d["trace_flags"] = flags
            d["otelServiceName"] = _service_name()
        except Exception:  # noqa: BLE001 - a log record is never lost to tracing
            pass
        return record

    record_factory.__djtrace_wrapped__ = factory
    return record_factory


def is_installed() -> bool:
    return _installed


def install() -> bool:
    """Adds the trace attributes to every log record of this process (idempotent)."""
    global _installed
    with _lock:
        current = logging.getLogRecordFactory()
        if getattr(current, "__djtrace_wrapped__", None) is None:
            logging.setLogRecordFactory(_wrap(current))
        _installed = True
        _native.request_gunicorn_ids(True)  # the request integration's remember_request
        return True


def uninstall() -> None:
    """Removes the wrapper when it is still the installed factory."""
    global _installed
    with _lock:
        current = logging.getLogRecordFactory()
        original = getattr(current, "__djtrace_wrapped__", None)
        if original is not None:
            logging.setLogRecordFactory(original)
        _installed = False
        _native.request_gunicorn_ids(False)
