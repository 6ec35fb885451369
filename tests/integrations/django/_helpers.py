"""Helpers shared by the Django integration tests."""

from __future__ import annotations

from typing import Any


def unmask(value: Any) -> Any:
    """A recorded value with the export path's redaction markers read as djtrace's own.

    The integrations redact with the semantic conventions' `REDACTED`; the PII engine of the
    export path (djtrace.pii, profile "default") may redact such a value once more and write
    `[REDACTED]`. Tests assert on what the integration decided, whichever marker is exported.
    """
    if isinstance(value, (tuple, list)):
        return type(value)(unmask(v) for v in value)
    if isinstance(value, str):
        return value.replace("[REDACTED]", "REDACTED")
    return value
