"""Wires the native span's context-manager protocol to OpenTelemetry's context variable.

When the default contextvars runtime context is in use, entering a span sets the variable
directly from native code, and the spans native hooks wrap around one call (middleware, views,
templates, cache calls) are made current without setting it at all: the runtime context is
replaced by a subclass whose get_current() also sees those (native "deferred attach"), so
`trace.get_current_span()` inside a view is the view's span as before. With any other runtime
context (OTEL_PYTHON_CONTEXT), the public attach/detach functions are called instead, so
behaviour is the same either way.
"""

from __future__ import annotations

import contextvars
import logging
import os
from contextvars import ContextVar

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

from djtrace import _native

_logger = logging.getLogger("djtrace")
misuse_count = 0


def _misuse(what: str) -> None:
    """A call on a span that has ended: ignored, counted, and logged at debug level."""
    global misuse_count
    misuse_count += 1
    if _logger.isEnabledFor(logging.DEBUG):
        _logger.debug("djtrace: %s on a span that has ended is ignored", what)


class DeferredSpansRuntimeContext(ContextVarsRuntimeContext):
    """OpenTelemetry's contextvars runtime context, on the same variable, whose current context
    includes the innermost span a native hook made current without setting it."""

    def __init__(self, var: ContextVar) -> None:  # noqa: D107 - shares `var`, makes none
        self._current_context = var

    # A native function as a static method: no Python frame per get_current().
    get_current = staticmethod(_native.current_context)  # type: ignore[assignment]


def _install() -> None:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = None
    if type(runtime) in (ContextVarsRuntimeContext, DeferredSpansRuntimeContext):
        var = runtime._current_context  # noqa: SLF001 - the variable the API reads
    _native.set_context_glue(
        var,
        Context,
        _SPAN_KEY,
        context_api.attach,
        context_api.detach,
        trace_api.set_span_in_context,
        context_api.get_current,
        _misuse,
    )
    if var is not None:
        # What a thread that never set the variable sees (shared by all such threads).
        default = contextvars.Context().run(var.get)
        _native.enable_deferred_attach(default)
        os.register_at_fork(after_in_child=_native.deferred_after_fork)
        if type(runtime) is not DeferredSpansRuntimeContext:
            context_api._RUNTIME_CONTEXT = DeferredSpansRuntimeContext(var)  # noqa: SLF001


_install()
