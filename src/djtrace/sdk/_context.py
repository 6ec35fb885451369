"""Wires the native span's context-manager protocol to OpenTelemetry's context variable.

When the default contextvars runtime context is in use, entering a span sets the variable
directly from native code; with any other runtime context (OTEL_PYTHON_CONTEXT), the public
attach/detach functions are called instead, so behaviour is the same either way.
"""

from __future__ import annotations

import logging

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context.context import Context
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


def _install() -> None:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = None
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        if type(runtime) is ContextVarsRuntimeContext:
            var = runtime._current_context  # noqa: SLF001 - the variable the API reads
    except ImportError:  # pragma: no cover - the API always ships it
        pass
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


_install()
