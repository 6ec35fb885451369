"""End to end: a Django view puts PII and secrets into the URL, the query string, headers, a
SQL literal, an exception message, a custom attribute, an event and a log line, and the
database's file sits in a directory named by an e-mail address (db.namespace, one of the
attributes every query of a statement shares); the bytes a real OTLP receiver gets hold none of
the raw values, under both profiles."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.otlp_receiver import OtlpHttpReceiver

SECRETS = {
    "card": "4111 1111 1111 1111",
    "ssn": "123-45-6789",
    "token": "tok_live_abcdef123456",
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    "api_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "password": "hunter2-password",
}
PERSONAL = {"email": "alice.smith@example.com", "phone": "+44 20 7946 0958",
            "ip": "203.0.113.77"}

APP = textwrap.dedent('''
    import logging, os, sys
    import django
    from django.conf import settings

    endpoint, profile = sys.argv[1], sys.argv[2]
    os.makedirs("alice.smith@example.com", exist_ok=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "djtrace"],
        MIDDLEWARE=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": "alice.smith@example.com/shop.sqlite3"}},
        DJTRACE={"pii": profile, "exporters": ["otlp"], "otlp_endpoint": endpoint,
                 "bsp_schedule_delay_ms": 50, "service_name": "pii-e2e"},
        LOGGING_CONFIG=None,
    )

    from django.db import connection
    from django.http import HttpResponse
    from django.urls import path
    from opentelemetry import trace

    log = logging.getLogger("shop")

    def lookup(request, email):
        span = trace.get_current_span()
        span.set_attribute("customer.card", "4111 1111 1111 1111")
        span.set_attribute("customer.note", "call +44 20 7946 0958")
        span.add_event("checkout", {"detail": "ssn 123-45-6789 for alice.smith@example.com"})
        log.warning("lookup for %s with password=hunter2-password", email)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 WHERE '4111 1111 1111 1111' <> 'tok_live_abcdef123456' "
                           "AND 'alice.smith@example.com' <> '123-45-6789'")
        if request.GET.get("fail"):
            raise ValueError("card 4111 1111 1111 1111 of alice.smith@example.com declined")
        return HttpResponse("ok")

    urlpatterns = [path("users/<str:email>/", lookup)]
    django.setup()

    from django.test import Client
    client = Client(raise_request_exception=False, REMOTE_ADDR="203.0.113.77")
    headers = {
        "HTTP_AUTHORIZATION": ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                               "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        "HTTP_X_API_KEY": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "HTTP_X_FORWARDED_FOR": "203.0.113.77",
    }
    q = ("/users/alice.smith@example.com/?token=tok_live_abcdef123456"
         "&password=hunter2-password&ok=shoes")
    assert client.get(q, **headers).status_code == 200
    assert client.get(q + "&fail=1", **headers).status_code == 500
    trace.get_tracer_provider().shutdown()
''')


@pytest.mark.parametrize("profile", ["default", "gdpr"])
def test_django_request_leaks_nothing(profile: str, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ".*",
           "PATH": "/usr/bin:/bin"}
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, str(script), receiver.endpoint, profile],
                                capture_output=True, text=True, timeout=120, env=env,
                                cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        spans = receiver.received.wait_for(4)
        raw = receiver.received.raw_bytes()
    names = {span.name for _, _, span in spans}
    assert "GET users/<str:email>/" in names, names
    queries = [span for _, _, span in spans if span.name.startswith("SELECT")]
    assert len(queries) == 2  # one per request
    for query in queries:
        namespace = next(kv.value.string_value for kv in query.attributes
                         if kv.key == "db.namespace")
        assert namespace.endswith("/shop.sqlite3")
        assert ("alice.smith@example.com" in namespace) == (profile != "gdpr")
    for label, secret in SECRETS.items():
        assert secret.encode() not in raw, label
    for label, value in PERSONAL.items():
        if profile == "gdpr":
            assert value.encode() not in raw, label
    assert b"shoes" in raw  # ordinary values survive
    # the failing request recorded its exception (message redacted, type kept)
    events = [e for _, _, span in spans for e in span.events if e.name == "exception"]
    assert events and any(kv.key == "exception.type" for kv in events[0].attributes)


def test_without_redaction_the_same_request_would_leak(tmp_path: Path) -> None:
    """The channels above really carry the values: with the profile off they arrive."""
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ".*",
           "PATH": "/usr/bin:/bin"}
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, str(script), receiver.endpoint, "off"],
                                capture_output=True, text=True, timeout=120, env=env,
                                cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        receiver.received.wait_for(4)
        raw = receiver.received.raw_bytes()
    leaked = {label for label, secret in {**SECRETS, **PERSONAL}.items() if secret.encode() in raw}
    # Attribute, event, URL and exception values reach the receiver when the engine is off (the
    # request integration still drops credentials from the query string and sanitised
    # headers, and SQL literals are obfuscated whatever the profile).
    assert {"card", "ssn", "email", "phone"} <= leaked, sorted(leaked)
