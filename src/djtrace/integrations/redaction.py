"""Redaction of values the integrations put into spans: query strings, URLs, command options,
cache keys.

Everything the integrations redact goes through the functions of this module, so that the
native redaction engine (native/pii) can replace them in one place. Until then the rules are
deliberately small and conservative:

- a query or option whose *key* looks sensitive (password, secret, token, api_key, session,
  csrf, signature, ...; see `is_sensitive_key`) keeps its key and loses its value, which
  becomes `REDACTED`, as the HTTP semantic conventions ask for url.query and url.full;
- credentials in a URL (`user:pass@host`) become `REDACTED:REDACTED@host`;
- free text (`redact_text`) gets both treatments for the URLs and `key=value` pairs it holds.
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_query_string",
    "redact_url",
    "redact_text",
    "redact_mapping",
]

REDACTED = "REDACTED"

# Keys redacted whatever they are called around these words (compared in lower case, with
# '-' read as '_').
_SENSITIVE_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "private_key",
    "authoriz",
    "session",
    "csrf",
    "xsrf",
    "signature",
    "credential",
    "cookie",
    "jwt",
)
# Short keys that are sensitive only as a whole (a substring test would catch "design").
_SENSITIVE_KEYS = frozenset(
    {"sig", "pwd", "pass", "key", "auth", "otp", "pin", "x_goog_signature", "awsaccesskeyid",
     "code_verifier"}
)

_key_cache: dict[str, bool] = {}


def is_sensitive_key(key: str) -> bool:
    """True when a value stored under `key` must not be exported."""
    cached = _key_cache.get(key)
    if cached is not None:
        return cached
    norm = key.strip().lower().replace("-", "_")
    result = (norm in _SENSITIVE_KEYS or norm.startswith("auth_")
              or any(part in norm for part in _SENSITIVE_PARTS))
    if len(_key_cache) < 4096:  # bounded: keys come from requests
        _key_cache[key] = result
    return result


def redact_query_string(query: str) -> str:
    """`a=1&password=x` -> `a=1&password=REDACTED`; order and encoding of the rest are kept."""
    if not query or "=" not in query:
        return query
    changed = False
    parts = query.split("&")
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if sep and value and is_sensitive_key(unquote_plus(key)):
            parts[i] = key + "=" + REDACTED
            changed = True
    return "&".join(parts) if changed else query


def _redact_netloc(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    return "REDACTED:REDACTED@" + netloc.rpartition("@")[2]


def redact_url(url: str) -> str:
    """Removes credentials and the values of sensitive query parameters from a URL."""
    if not url:
        return url
    scheme_end = url.find("://")
    if scheme_end > 0:
        rest_start = scheme_end + 3
        path_start = len(url)
        for sep in "/?#":
            i = url.find(sep, rest_start)
            if i != -1 and i < path_start:
                path_start = i
        netloc = url[rest_start:path_start]
        if "@" in netloc:
            url = url[:rest_start] + _redact_netloc(netloc) + url[path_start:]
    q = url.find("?")
    if q == -1:
        return url
    fragment_start = url.find("#", q)
    if fragment_start == -1:
        return url[: q + 1] + redact_query_string(url[q + 1 :])
    return url[: q + 1] + redact_query_string(url[q + 1 : fragment_start]) + url[fragment_start:]


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PAIR_IN_TEXT = re.compile(r"([A-Za-z0-9_.\-]+)([=:])([^\s&,;:='\"]+)")


def redact_text(text: str) -> str:
    """Redacts URLs (credentials, sensitive parameters) and sensitive `key=value` / `key:value`
    pairs inside free text such as a command argument or a cache key."""
    if not text:
        return text
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    if "=" in text or ":" in text:

        def pair(m: re.Match) -> str:
            if m.group(3) == REDACTED or m.group(3).startswith("//"):
                return m.group(0)
            if is_sensitive_key(m.group(1)):
                return m.group(1) + m.group(2) + REDACTED
            return m.group(0)

        text = _PAIR_IN_TEXT.sub(pair, text)
    return text


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
