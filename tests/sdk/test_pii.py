"""PII never leaves the process: spans from user code and from official instrumentations are
redacted natively before export, under the default and gdpr profiles; what a real OTLP
receiver gets holds none of the raw values."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from support.otlp_receiver import OtlpHttpReceiver

from djtrace import ConfigError
from djtrace.pii import build_redactor

SECRETS_DEFAULT = [
    "4111 1111 1111 1111",  # card (Luhn-valid)
    "123-45-6789",  # SSN
    "hunter2-password",  # password parameter
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "s3cr3t-basic",
    "tok_live_abcdef123456",
]
SECRETS_GDPR = ["alice.smith@example.com", "+44 20 7946 0958", "203.0.113.77",
                "GB82WEST12345698765432"]

EMIT = textwrap.dedent('''
    import sys, base64, http.server, threading
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
    from djtrace.sdk import TracerProvider, BatchSpanProcessor
    from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter

    endpoint, profile, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = TracerProvider(redaction=profile)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)

    # An official instrumentation's spans: redacted like ours.
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    RequestsInstrumentor().instrument()
    import requests

    tracer = trace.get_tracer("pii")
    basic = base64.b64encode(b"admin:s3cr3t-basic").decode()
    with tracer.start_as_current_span("lookup alice.smith@example.com") as span:
        span.set_attribute("url.query",
                           "q=shoes&password=hunter2-password&token=tok_live_abcdef123456")
        span.set_attribute("http.request.header.authorization", ["Basic " + basic])
        span.set_attribute("user.card", "4111 1111 1111 1111")
        span.set_attribute("note", "call +44 20 7946 0958 or mail alice.smith@example.com")
        span.set_attribute("client.address", "203.0.113.77")
        span.set_attribute("payment.iban", "GB82WEST12345698765432")
        span.set_attribute("tags", ["ssn 123-45-6789", "ok"])
        span.add_event("login", {"jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                                        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"})
        span.set_status(Status(StatusCode.ERROR, "key AKIAIOSFODNN7EXAMPLE rejected"))
        try:
            raise ValueError("github token ghp_16C7e42F292c6912E7710c838347Ae178B4a leaked")
        except ValueError as exc:
            span.record_exception(exc)
        requests.get(f"http://127.0.0.1:{port}/search?email=alice.smith@example.com&api_key=tok_live_abcdef123456",
                     timeout=5)
    provider.shutdown()
''')


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("profile", ["default", "gdpr"])
def test_received_bytes_hold_no_raw_values(profile: str, tmp_path: Path, web_server: int) -> None:
    script = tmp_path / "emit.py"
    script.write_text(EMIT)
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, str(script), receiver.endpoint, profile,
                                 str(web_server)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        spans = receiver.received.wait_for(2)
        raw = receiver.received.raw_bytes()
    assert len(spans) == 2
    names = {span.name for _, _, span in spans}
    assert "GET" in names  # the official requests instrumentation's span
    for secret in SECRETS_DEFAULT:
        assert secret.encode() not in raw, secret
    for secret in SECRETS_GDPR:
        if profile == "gdpr":
            assert secret.encode() not in raw, secret
    if profile == "default":
        # default keeps contact data (only gdpr removes it) but never secrets
        assert b"alice.smith@example.com" in raw
    assert b"[REDACTED]" in raw
    assert b"q=shoes" in raw  # non-sensitive values survive


def test_partial_and_pseudonymised_styles() -> None:
    r = build_redactor({"profile": "gdpr", "hmac_key": "k1",
                        "detectors": {"email": "partial", "credit_card": "partial",
                                      "phone": "pseudonymise"}})
    assert r.redact("note", "mail alice@example.com") == "mail al***@example.com"
    assert r.redact("card", "4242 4242 4242 4242") == "**** **** **** 4242"
    one = r.redact("x", "+44 20 7946 0958")
    two = r.redact("y", "+44 20 7946 0958")
    assert one == two and one.startswith("pseudo:") and "7946" not in one
    other_key = build_redactor({"profile": "gdpr", "hmac_key": "k2",
                                "detectors": {"phone": "pseudonymise"}})
    assert other_key.redact("x", "+44 20 7946 0958") != one


def test_pseudonym_is_stable_across_processes() -> None:
    code = ("from djtrace.pii import build_redactor;"
            "print(build_redactor({'profile': 'gdpr'}).redact('enduser.id', 'user-42'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"DJTRACE_PII_KEY": "shared-secret", "PATH": "/usr/bin"},
                           check=True).stdout.strip() for _ in range(2)}
    assert len(outs) == 1
    (token,) = outs
    assert token.startswith("pseudo:") and "user-42" not in token


def test_custom_rules_and_allow_list() -> None:
    r = build_redactor({
        "profile": "default",
        "deny_keys": [{"name": "pin", "key": "*.pin"}],
        "value_patterns": [{"name": "order_secret", "pattern": "ORD-[0-9]{4}-SECRET"}],
        "allow_keys": ["app.safe_*"],
    })
    assert r.redact("card.pin", "1234") == "[REDACTED]"
    assert r.redact("note", "ref ORD-2024-SECRET ok") == "ref [REDACTED] ok"
    assert r.redact("app.safe_card", "4111 1111 1111 1111") == "4111 1111 1111 1111"
    assert r.redact("note", "order ORD-2024-000123 shipped") == "order ORD-2024-000123 shipped"
    counters = r.counters()
    assert counters["pin"] == 1 and counters["order_secret"] == 1


def test_profile_off_redacts_nothing() -> None:
    assert build_redactor("off") is None


@pytest.mark.parametrize("setting,needle", [
    ("everything", "profile"),
    ({"profile": "gdpr", "detectors": {"email": "blur"}}, "email"),
    ({"detectors": {"retina_scan": True}}, "retina_scan"),
    ({"value_patterns": [{"name": "x", "pattern": "(unclosed"}]}, "value_patterns"),
    ({"profile": "default", "detectors": {"phone": "pseudonymise"}}, "hmac"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_pii_settings_are_named(setting, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_redactor(setting, environ={})
    assert needle in str(info.value)


def test_env_profile_overrides_setting() -> None:
    r = build_redactor("default", environ={"DJTRACE_PII_PROFILE": "gdpr"})
    assert r.redact("note", "alice@example.com") == "[REDACTED]"
    with pytest.raises(ConfigError) as info:
        build_redactor("default", environ={"DJTRACE_PII_PROFILE": "strict"})
    assert "DJTRACE_PII_PROFILE" in str(info.value) and "strict" in str(info.value)
