"""One switch that tells every djtrace integration to record nothing in the current context.

The request hook sets it for excluded URLs; the database, cache, template and HTTP-client
integrations check it before doing any work. It is a contextvar, so it follows the request
through threads started with copied contexts and through asyncio tasks, and one `get()` is
all a hot path pays.

OpenTelemetry's own `suppress_instrumentation` context key is honoured too (see
`suppressed()`), so code that already uses the official switch silences djtrace as well.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["suppressed", "suppress", "enter", "exit", "SUPPRESSED"]

#: True while integrations must not record. Hot paths call `SUPPRESSED.get()` directly.
SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "djtrace_suppressed", default=False
)

try:  # the official switch, a key in the OpenTelemetry context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _OTEL_KEY
    from opentelemetry.context import get_value as _otel_get_value
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
    _OTEL_KEY = None
    _otel_get_value = None


def suppressed() -> bool:
    """True when the current context asked for no telemetry (djtrace's or OpenTelemetry's)."""
    if SUPPRESSED.get():
        return True
    if _OTEL_KEY is not None:
        return bool(_otel_get_value(_OTEL_KEY))
    return False


def enter() -> contextvars.Token:
    """Starts suppression; returns the token for `exit()` (for code that cannot use `with`)."""
    return SUPPRESSED.set(True)


def exit(token: contextvars.Token) -> None:  # noqa: A001 - pairs with enter()
    """Restores the state `enter()` replaced."""
    SUPPRESSED.reset(token)


@contextmanager
def suppress() -> Iterator[None]:
    """Within the block, djtrace integrations record nothing (no spans, no query statistics)."""
    token = SUPPRESSED.set(True)
    try:
        yield
    finally:
        SUPPRESSED.reset(token)
