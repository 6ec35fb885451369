"""The native attributes of an HTTP client span against Python's own URL parsing.

server.address and server.port come from djtrace's C++ split of the URL; it must find what
urllib.parse.urlsplit finds (hostname, port, the scheme's default port, and nothing where
urlsplit or .port raise), for the URLs client libraries send and for garbage. The method and
url.full follow the HTTP semantic conventions (url.full redacted as redact_url does).
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest

from djtrace import _native
from djtrace.integrations.redaction import redact_url

KNOWN = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def reference(method: str, url: str, old: bool) -> tuple[str, dict]:
    """What the integration computed in Python before the split moved to C++."""
    raw = method or "GET"
    upper = raw.upper()
    sanitized = upper if upper in KNOWN else "_OTHER"
    full = redact_url(url)
    attrs: dict = {"http.request.method": sanitized, "url.full": full}
    if sanitized == "_OTHER":
        attrs["http.request.method_original"] = raw
    host = port = None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        pass
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    if old:
        attrs["http.method"] = sanitized
        attrs["http.url"] = full
        if host:
            attrs["net.peer.name"] = host
        if port:
            attrs["net.peer.port"] = port
    return ("HTTP" if sanitized == "_OTHER" else sanitized), attrs


CORPUS = [
    "http://example.com",
    "https://API.Example.COM:8443/orders/7/?q=1#frag",
    "https://user:secret@pay.example.com/charge?token=abc&amount=5",
    "http://[::1]:8000/health",
    "http://[FE80::1%25Eth0]/x",
    "http://[fe80::1%eth0]:81/",
    "http://[::ffff:10.0.0.1]/",
    "http://[v1.fe]/",
    "http://[1.2.3.4]/",
    "http://[::1/x",
    "http://::1]/x",
    "http://[zz::1]/",
    "http://h:0/",
    "http://h:/",
    "http://h:080/",
    "http://h:65535/",
    "http://h:65536/",
    "http://h:99999999999999999999/",
    "http://h:8a/",
    "http://h:-1/",
    "http://h:+1/",
    "http://a@b@c:5?q#f",
    "ws://socket.example/feed",
    "wss://socket.example/feed",
    "ftp://files.example/x",
    "//no-scheme.example:9/x",
    "example.com:8080/path",
    "localhost:8000",
    "/relative/path?x=1",
    "",
    "  \t\nhttp://Spaces.Example/\t",
    "HTTPS://UPPER.EXAMPLE",
    "h+t-t.p://x.example:7/",
    "1http://x.example/",
    "http://x.example?password=p#frag",
    "http://x.example#a?b",
    "http://x.example/p;params?x=1",
    "http:///path-only",
    "http://:80/",
    "http://@/",
    "http://user@/",
]


@pytest.mark.parametrize("url", CORPUS)
@pytest.mark.parametrize("old", [False, True])
def test_the_native_split_finds_what_urlsplit_finds(url, old):
    assert _native.client_request_attributes("GET", url, old) == reference("GET", url, old)


@pytest.mark.parametrize("method", ["GET", "get", "Post", "PURGE", "", "pAtCh", "QUERY", "g et"])
def test_methods(method):
    assert _native.client_request_attributes(method, "http://h/", False) == reference(
        method, "http://h/", False)


def test_random_urls_agree_with_urlsplit():
    rnd = random.Random(20261126)
    pieces = ["http", "https", "ws", "HTTP", "x", ":", "//", "/", "?", "#", "@", "[", "]", "::",
              "1", "80", "0", "65536", "a", "B", ".", "%", "fe80", "v1", "\t", " ", "user:pw",
              "ffff", "1.2.3.4", "-", "+", "=", "&", "token", "é"]
    checked = 0
    for _ in range(20000):
        url = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        want = reference("GET", url, True)
        # Non-ASCII hosts: urlsplit lower-cases them with str.lower() and may reject some
        # after NFKC normalisation; the native split lower-cases ASCII letters only.
        if not want[1].get("server.address", "").isascii():
            continue
        assert _native.client_request_attributes("GET", url, True) == want, url
        checked += 1
    assert checked > 15000


def test_lone_surrogates_come_back_as_they_went_in():
    url = "http://h.example/\udcff?password=x"
    name, attrs = _native.client_request_attributes("GET", url, False)
    assert name == "GET"
    assert attrs["url.full"] == "http://h.example/\udcff?password=REDACTED"
    assert attrs["server.address"] == "h.example"
