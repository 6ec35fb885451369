"""The native redaction (native/http/url.cc) against the Python implementation it replaced.

The oracle below is the former djtrace.integrations.redaction, copied unchanged (apart from the
names and the bounded cache of key results) when the rules moved into the native core; the native
functions must give the same strings on every input.
"""

from __future__ import annotations

import random
import re
from urllib.parse import unquote_plus

import pytest

from djtrace import _native
from djtrace.integrations import redaction

# --- oracle: the former Python implementation ------------------------------------------------

REDACTED = "REDACTED"

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
_SENSITIVE_KEYS = frozenset(
    {"sig", "pwd", "pass", "key", "auth", "otp", "pin", "x_goog_signature", "awsaccesskeyid",
     "code_verifier"}
)


def old_is_sensitive_key(key: str) -> bool:
    norm = key.strip().lower().replace("-", "_")
    return (norm in _SENSITIVE_KEYS or norm.startswith("auth_")
            or any(part in norm for part in _SENSITIVE_PARTS))


def old_redact_query_string(query: str) -> str:
    if not query or "=" not in query:
        return query
    changed = False
    parts = query.split("&")
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if sep and value and old_is_sensitive_key(unquote_plus(key)):
            parts[i] = key + "=" + REDACTED
            changed = True
    return "&".join(parts) if changed else query


def _old_redact_netloc(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    return "REDACTED:REDACTED@" + netloc.rpartition("@")[2]


def old_redact_url(url: str) -> str:
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
            url = url[:rest_start] + _old_redact_netloc(netloc) + url[path_start:]
    q = url.find("?")
    if q == -1:
        return url
    fragment_start = url.find("#", q)
    if fragment_start == -1:
        return url[: q + 1] + old_redact_query_string(url[q + 1 :])
    return (url[: q + 1] + old_redact_query_string(url[q + 1 : fragment_start])
            + url[fragment_start:])


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PAIR_IN_TEXT = re.compile(r"([A-Za-z0-9_.\-]+)([=:])(REDACTED(?=#)|[^\s&,;:='\"]+)")


def old_redact_text(text: str) -> str:
    if not text:
        return text
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: old_redact_url(m.group(0)), text)
    if "=" in text or ":" in text:

        def pair(m: re.Match) -> str:
            if m.group(3) == REDACTED or m.group(3).startswith("//"):
                return m.group(0)
            if old_is_sensitive_key(m.group(1)):
                return m.group(1) + m.group(2) + REDACTED
            return m.group(0)

        text = _PAIR_IN_TEXT.sub(pair, text)
    return text


# --- generated inputs ------------------------------------------------------------------------

# Pieces that exercise the rules: sensitive words and their parts, separators, URL syntax,
# escapes, quotes, Unicode whitespace (U+0085, U+00A0, U+2000, U+3000, U+001C, ...), characters
# that Python lower-cases to ASCII (KELVIN SIGN, capital I with dot), non-ASCII letters and a
# lone surrogate.
_PIECES = [
    "password", "pass", "Pass", "PASS", "word", "token", "key", "KEY", "api", "_", "-", "auth",
    "auth_", "sig", "pwd", "session", "secret", "jwt", "x-goog-", "signature",
    "=", "=", ":", ":", "&", "&", "?", "?", "#", "@", "@", "://", "://", "/", "//", "http",
    "https", "ftp+x.y-z", "%77", "%5F", "%2D", "%4B", "%", "%2", "%zz", "%E2%84%AA", "%C2%A0",
    "%20", "+", "+", " ", " ", "\t", "\n", "\u00a0", "\u0085", "\u2000", "\u3000", "\u001c",
    "\u1680", "\u200b", "'", '"', "<", ">", ",", ";", ".", "REDACTED", "REDACTED:REDACTED@",
    "[::1]", ":8080", "é", "\u212a", "\u0130", "\u00df", "\ud800", "\U0001f600",
]
_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _pieces(rng: random.Random, most: int) -> str:
    parts = []
    for _ in range(rng.randint(0, most)):
        if rng.random() < 0.7:
            parts.append(rng.choice(_PIECES))
        else:
            parts.append("".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 4))))
    return "".join(parts)


def _generate(rng: random.Random, count: int) -> list[str]:
    inputs = []
    for _ in range(count):
        if rng.random() < 0.3:  # shaped like a query string: key=value&...
            text = "&".join(_pieces(rng, 3) + rng.choice("==:") + _pieces(rng, 2)
                            for _ in range(rng.randint(1, 4)))
        else:
            text = _pieces(rng, 14)
        if rng.random() < 0.25:  # more inputs shaped like URLs
            text = rng.choice(["http://", "https://u:p@", "s3://", "x://a@b/"]) + text
        inputs.append(text)
    return inputs


_INPUTS = _generate(random.Random(20240611), 6000)

_FUNCTIONS = [
    (_native.is_sensitive_key, old_is_sensitive_key),
    (_native.redact_query_string, old_redact_query_string),
    (_native.redact_url, old_redact_url),
    (_native.redact_text, old_redact_text),
]


@pytest.mark.parametrize(("native", "oracle"), _FUNCTIONS, ids=lambda f: f.__name__)
def test_native_matches_former_python(native, oracle):
    mismatches = [(s, native(s), oracle(s)) for s in _INPUTS if native(s) != oracle(s)]
    assert mismatches[:5] == []


@pytest.mark.parametrize("key", [
    "password", " pass\u00a0", "\u3000pwd\u0085", "\u212aey", "api_\u212aey", "pass\u212aey",
    "\u0130", "p\u0130n", "PASSWORD", "x-goog-signature", "auth_", "author", "keyword", "pass\n",
    "\u001cpin\u001f", "\u200bpin", "k\u200b", "",
])
def test_keys(key):
    assert _native.is_sensitive_key(key) is old_is_sensitive_key(key)
    assert redaction.is_sensitive_key(key) is old_is_sensitive_key(key)


@pytest.mark.parametrize("value", [
    "https://u:p@h/a?password=x&b=%E2%84%AAey#f",
    "?%E2%84%AAey=1&%C2%A0pass%C2%A0=2&pass%77ord=3&api%5fkey=4&api%5Fkey=5&%=6&%2=7",
    ("see http://u:p@h/?token=1 and 'ftp://a@b' or <s3://k:v@bucket/x?sig=2>; pwd:abc,"
     " token=REDACTED key=//kept key:\u00a0x pin=1\u20001"),
    "\ud800password=\ud800&token=\udfff http://\ud800@h",
    "caf\u00e9=1&s\u00e9ssion=2&session=\u00e9\u00e9",
    "see https://h/p?a=1&token=z#sec and password=ab#cd",
])
def test_examples(value):
    assert _native.redact_query_string(value) == old_redact_query_string(value)
    assert _native.redact_url(value) == old_redact_url(value)
    assert _native.redact_text(value) == old_redact_text(value)


@pytest.mark.parametrize("value", [
    "", "a=1&b=2", "plain text", "https://example.com/a?b=1#c", "password=REDACTED",
    "https://REDACTED:REDACTED@h/?token=REDACTED", "caf\u00e9 \ud800", "q=//x",
])
def test_unchanged_input_is_returned_as_is(value):
    # A copy, so that the identity test is not helped by interning.
    value = "".join(list(value))
    for fn in (_native.redact_query_string, _native.redact_url, _native.redact_text,
               redaction.redact_query_string, redaction.redact_url, redaction.redact_text):
        assert fn(value) is value


def test_changed_input_is_a_new_str():
    value = "a=1&password=secret"
    assert redaction.redact_query_string(value) == "a=1&password=REDACTED"
    assert redaction.redact_url("http://u:p@h/") == "http://REDACTED:REDACTED@h/"
    assert redaction.redact_text("token:abc") == "token:REDACTED"


@pytest.mark.parametrize("fn", [_native.is_sensitive_key, _native.redact_query_string,
                                _native.redact_url, _native.redact_text])
def test_only_str(fn):
    with pytest.raises(TypeError):
        fn(b"password=x")


def test_fragment_after_a_redacted_url_value_is_kept():
    text = "see https://h/p?a=1&token=z#sec and password=ab#cd"
    assert _native.redact_text(text) == ("see https://h/p?a=1&token=REDACTED#sec and "
                                         "password=REDACTED")
