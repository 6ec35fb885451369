"""Task arguments on spans: off by default; when enabled, strings of bounded length that pass
through one filter, where the PII engine plugs in.

Enable with the DJTRACE key `celery_task_args` (or DJTRACE_CELERY_TASK_ARGS=true); the length
bound is `celery_task_args_max_length` (default 1024 characters per attribute). The text is
Celery's own `argsrepr` / `kwargsrepr` when the message carries them, so a caller that passed
`argsrepr=` to hide sensitive arguments from Celery's logs hides them from traces too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ARGS = "djtrace.celery.args"
KWARGS = "djtrace.celery.kwargs"

#: filter(task_name, attribute_key, text) -> text or None (None drops the attribute).
ArgumentFilter = Callable[[str, str, str], "str | None"]

_filter: ArgumentFilter | None = None


def set_filter(fn: ArgumentFilter | None) -> None:
    """Installs the function every argument text passes through before it is recorded (the
    PII engine's redactor, for one); None removes it."""
    global _filter
    _filter = fn


def _text(value: Any, max_length: int) -> str:
    if isinstance(value, str):
        text = value
    else:
        from celery.utils.saferepr import saferepr

        text = saferepr(value, max_length + 1)
    if len(text) > max_length:
        text = text[: max(max_length - 3, 0)] + "..."
    return text


def attributes(task_name: str, args: Any, kwargs: Any, max_length: int) -> dict:
    """The argument attributes of one task span: `args` / `kwargs` are Celery's reprs (strings)
    or the values themselves."""
    out: dict = {}
    fn = _filter
    for key, value in ((ARGS, args), (KWARGS, kwargs)):
        if value is None:
            continue
        text = _text(value, max_length)
        if fn is not None:
            try:
                text = fn(task_name, key, text)
            except Exception:  # noqa: BLE001 - a failing filter must not leak the text
                from djtrace.sdk.trace import _report_internal_error

                _report_internal_error("celery argument filter")
                text = None
            if text is None:
                continue
            text = _text(text, max_length)
        out[key] = text
    return out
