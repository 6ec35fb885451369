"""Redaction of values the integrations put into spans: query strings, URLs, command options,
cache keys.

Everything the integrations redact goes through the functions of this module. The rules live in
the native core (native/http/url.h), shared with the native request instrumentation; this module
only exposes them to Python. They are deliberately small and conservative:

- a query or option whose *key* looks sensitive (password, secret, token, api_key, session,
  csrf, signature, ...; see `is_sensitive_key`) keeps its key and loses its value, which
  becomes `REDACTED`, as the HTTP semantic conventions ask for url.query and url.full;
- credentials in a URL (`user:pass@host`) become `REDACTED:REDACTED@host`;
- free text (`redact_text`) gets both treatments for the URLs and `key=value` pairs it holds.

The functions take `str` only (anything else raises TypeError) and return a value that needs no
change as it is (the same object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from djtrace import _native

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_mapping",
    "redact_query_string",
    "redact_text",
    "redact_url",
]

REDACTED = "REDACTED"


def is_sensitive_key(key: str) -> bool:
    """True when a value stored under `key` must not be exported."""
    return _native.is_sensitive_key(key)


def redact_query_string(query: str) -> str:
    """`a=1&password=x` -> `a=1&password=REDACTED`; order and encoding of the rest are kept."""
    return _native.redact_query_string(query)


def redact_url(url: str) -> str:
    """Removes credentials and the values of sensitive query parameters from a URL."""
    return _native.redact_url(url)


def redact_text(text: str) -> str:
    """Redacts URLs (credentials, sensitive parameters) and sensitive `key=value` / `key:value`
    pairs inside free text such as a command argument or a cache key."""
    return _native.redact_text(text)


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `values` where sensitive keys hold `REDACTED` and strings are `redact_text`-ed."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if is_sensitive_key(str(key)):
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = redact_text(value)
        else:
            out[key] = value
    return out
