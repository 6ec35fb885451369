"""Activation by INSTALLED_APPS, the public middleware, settings and the system checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core import checks
from django.test import Client, override_settings
from opentelemetry.trace import SpanKind

from djtrace.integrations.django import settings as dj_settings

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.django_db


def run_django(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with the test project's settings."""
    full_env = dict(os.environ)
    full_env.update({"DJANGO_SETTINGS_MODULE": "project.settings",
                     "PYTHONPATH": os.pathsep.join(
                         [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(
                             os.pathsep) if p]),
                     "OTEL_TRACES_EXPORTER": "none"})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120, cwd=str(HERE))


def test_installed_app_is_all_it_takes():
    from django.core.handlers.base import BaseHandler
    from opentelemetry import trace

    import djtrace
    from djtrace.integrations.django import installed
    from djtrace.sdk.trace import TracerProvider

    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    parts = installed()
    for part in ("handlers", "middleware", "views", "drf", "templates", "cache", "signals",
                 "commands", "jinja2", "http"):
        assert parts.get(part), part
    assert hasattr(BaseHandler.get_response, "__wrapped__")
    assert djtrace.get_config() is not None or not isinstance(
        djtrace._provider, TracerProvider)


def test_configured_from_the_djtrace_setting_in_a_fresh_process():
    result = run_django("""
        import django
        django.setup()
        import djtrace
        from opentelemetry import trace
        cfg = djtrace.get_config()
        print(cfg.service_name, cfg.exporters)
        print(type(trace.get_tracer_provider()).__module__)
    """, env={"OTEL_TRACES_EXPORTER": ""})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "djtrace-django-tests ()"
    assert lines[1] == "djtrace.sdk.trace"


def test_keys_of_every_integration_are_accepted():
    result = run_django("""
        from django.conf import settings
        settings.DJTRACE = {**settings.DJTRACE, "db_spans": False, "celery_task_args": True,
                            "redis_trace_without_parent": True, "cache_spans": False}
        import django
        django.setup()
        import djtrace
        from django.core import checks
        from djtrace.integrations.django import settings as dj_settings
        print(djtrace.get_config() is not None, dj_settings.get().cache_spans,
              [m.id for m in checks.run_checks(tags=["djtrace"])])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True False []"
    assert "unknown setting" not in result.stderr and "not configured" not in result.stderr


def test_otel_python_django_instrument_false_switches_the_django_part_off():
    result = run_django("""
        import django
        django.setup()
        from django.core.handlers.base import BaseHandler
        from django.test import Client
        from djtrace.integrations.django import installed
        from djtrace.testing import capture_spans
        with capture_spans() as spans:
            Client().get("/plain/")
        print(hasattr(BaseHandler.get_response, "__wrapped__"), installed(), spans.names())
    """, env={"OTEL_PYTHON_DJANGO_INSTRUMENT": "false"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False {} []"


def test_disabled_instrumentations_variable():
    result = run_django("""
        import django
        django.setup()
        import requests.sessions
        from djtrace.integrations.django import installed
        print(installed().get("handlers"), hasattr(requests.sessions.Session.send, "_djtrace_http"))
    """, env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True False"


def test_an_application_provider_is_used_not_replaced():
    result = run_django("""
        from opentelemetry import trace
        from djtrace.sdk.trace import TracerProvider
        from djtrace.sdk.trace.export import InMemorySpanExporter, SimpleSpanProcessor
        provider = TracerProvider()
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        import django
        django.setup()
        import djtrace
        from django.test import Client
        Client().get("/plain/")
        print(djtrace.get_config() is None, trace.get_tracer_provider() is provider,
              [s.name for s in memory.get_finished_spans()][-1])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True GET plain/"


# -- TracingMiddleware -----------------------------------------------------------------------

def test_placed_middleware_is_not_doubled(spans):
    chain = ["djtrace.middleware.TracingMiddleware",
             "django.contrib.sessions.middleware.SessionMiddleware"]
    with override_settings(MIDDLEWARE=chain):
        Client().get("/items/1/")
    servers = [s for s in spans.spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET items/<int:pk>/"]
    assert spans.by_name("djtrace.middleware.TracingMiddleware") == []
    session = spans.one("django.contrib.sessions.middleware.SessionMiddleware")
    assert spans.parent_of(session) is not None
    assert spans.parent_of(session).kind is SpanKind.SERVER


def test_placed_middleware_decides_where_tracing_starts(spans):
    chain = ["project.web.middleware.ShortCircuitMiddleware",
             "djtrace.middleware.TracingMiddleware",
             "django.contrib.sessions.middleware.SessionMiddleware"]
    with override_settings(MIDDLEWARE=chain):
        assert Client().get("/short-circuit/").content == b"short"
        assert spans.spans == []  # answered above TracingMiddleware: untraced
        Client().get("/items/1/")
    root = spans.one("GET items/<int:pk>/")
    assert root.parent is None
    # The middleware above it is outside the request span and has no span.
    assert spans.by_name("project.web.middleware.ShortCircuitMiddleware") == []
    assert spans.one("django.contrib.sessions.middleware.SessionMiddleware")


def test_placed_middleware_under_asgi(spans):
    import asyncio

    from django.test import AsyncClient

    chain = ["djtrace.middleware.TracingMiddleware",
             "project.web.middleware.DualModeMiddleware"]

    async def go():
        return await AsyncClient().get("/async/")

    with override_settings(MIDDLEWARE=chain):
        asyncio.run(go())
    servers = [s for s in spans.spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET async/"]
    assert spans.parent_of(spans.one("async_view")).name == \
        "project.web.middleware.DualModeMiddleware"


def test_middleware_alone_without_the_app():
    """A project that only adds the middleware (no app) still gets request spans."""
    result = run_django("""
        import django
        from django.conf import settings
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
        settings.MIDDLEWARE = ["djtrace.middleware.TracingMiddleware"] + settings.MIDDLEWARE
        django.setup()
        from django.test import Client
        from djtrace.testing import capture_spans
        Client().get("/plain/")  # the first request loads the middleware, which installs
        with capture_spans() as spans:
            Client().get("/plain/")
        print([s.name for s in spans.spans if s.kind.name == "SERVER"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['GET plain/']"


# -- settings --------------------------------------------------------------------------------

def test_settings_are_cached_and_follow_override_settings():
    first = dj_settings.get()
    assert dj_settings.get() is first
    with override_settings(DJTRACE={"cache_spans": False}):
        inside = dj_settings.get()
        assert inside is not first and inside.cache_spans is False
    assert dj_settings.get().cache_spans is True


def test_defaults():
    s = dj_settings.load({}, environ={})
    assert s.middleware_spans and s.view_spans and s.drf_spans and s.template_spans
    assert s.cache_spans and s.command_spans and s.capture_enduser and s.auth_events
    assert not s.cache_keys and not s.signal_spans
    assert s.cache_repeat_threshold == 5
    assert "runserver" in s.excluded_commands and "shell" in s.excluded_commands
    assert s.excluded_re is None and s.instrument is True and s.semconv_old is False
    assert s.problems == []


def test_bad_values_fall_back_to_their_default():
    s = dj_settings.load({"cache_spans": "yes", "cache_repeat_threshold": -1,
                          "excluded_urls": "([", "excluded_commands": "runserver"}, environ={})
    assert s.cache_spans is True
    assert s.cache_repeat_threshold == 5
    assert s.excluded_re is None
    assert "shell" in s.excluded_commands
    assert sorted(p.id for p in s.problems) == ["djtrace.E003", "djtrace.E003", "djtrace.E003",
                                                 "djtrace.E004"]


def test_unknown_keys_are_reported_but_sdk_keys_are_not():
    s = dj_settings.load({"service_name": "x", "cach_spans": True, "zzz": 1}, environ={})
    assert [(p.id, p.key) for p in s.problems] == [("djtrace.E002", "cach_spans"),
                                                   ("djtrace.E002", "zzz")]
    typo, unknown = (p.message for p in s.problems)
    assert typo == "DJTRACE['cach_spans'] is not a known setting (did you mean 'cache_spans'?)"
    assert unknown.startswith("DJTRACE['zzz'] is not a known setting (known: app_code, ")


# -- system checks ---------------------------------------------------------------------------

def run_checks() -> list:
    return [m for m in checks.run_checks(tags=["djtrace"])]


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_no_check_message_for_the_test_settings():
    assert run_checks() == []


@pytest.mark.parametrize("value,expected", [
    ("not a dict", ["djtrace.E001"]),
    ({"cache_spns": True}, ["djtrace.E002"]),
    ({"middleware_spans": 1}, ["djtrace.E003"]),
    ({"cache_repeat_threshold": "5"}, ["djtrace.E003"]),
    ({"signal_min_duration_ms": -1}, ["djtrace.E003"]),
    ({"excluded_commands": [1]}, ["djtrace.E003"]),
    ({"excluded_urls": 42}, ["djtrace.E003"]),
    ({"excluded_urls": "health,(unclosed"}, ["djtrace.E004"]),
    ({"sampler": "sometimes"}, ["djtrace.E005"]),
    ({"otlp_endpoint": "ftp://nowhere"}, ["djtrace.E005"]),
])
def test_error_checks(value, expected):
    with override_settings(DJTRACE=value):
        messages = run_checks()
    assert ids(messages) == expected
    assert all(m.level == checks.ERROR for m in messages)
    assert all(str(value) in m.msg or "DJTRACE" in m.msg or "sampler" in m.msg.lower()
               or "endpoint" in m.msg for m in messages), [m.msg for m in messages]


def test_regex_check_covers_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "a[")
    messages = run_checks()
    assert ids(messages) == ["djtrace.E004"]
    assert "OTEL_PYTHON_DJANGO_EXCLUDED_URLS" in messages[0].msg


def test_pii_off_outside_debug_warns(monkeypatch):
    with override_settings(DJTRACE={"pii": "off"}, DEBUG=False):
        messages = [m for m in run_checks() if m.id != "djtrace.E002"]
    assert ids(messages) == ["djtrace.W001"]
    assert messages[0].level == checks.WARNING
    with override_settings(DJTRACE={"pii": "off"}, DEBUG=True):
        assert [m for m in run_checks() if m.id == "djtrace.W001"] == []
    monkeypatch.setenv("DJTRACE_PII_PROFILE", "off")
    assert ids(run_checks()) == ["djtrace.W001"]
    monkeypatch.setenv("DJTRACE_PII_PROFILE", "gdpr")
    assert run_checks() == []


def test_middleware_not_first_warns():
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware",
                                       "djtrace.middleware.TracingMiddleware"]):
        messages = run_checks()
    assert ids(messages) == ["djtrace.W002"]
    assert "CommonMiddleware" in messages[0].msg
    with override_settings(MIDDLEWARE=["djtrace.middleware.TracingMiddleware",
                                       "django.middleware.common.CommonMiddleware"]):
        assert run_checks() == []


def test_official_django_instrumentation_warns():
    official = "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    with override_settings(MIDDLEWARE=[official, "django.middleware.common.CommonMiddleware"]):
        messages = run_checks()
    assert ids(messages) == ["djtrace.W003"]


def test_checks_run_through_manage_py_check():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--tag", "djtrace"], cwd=str(HERE),
        env={**os.environ, "DJTRACE_PII_PROFILE": "off", "OTEL_TRACES_EXPORTER": "none"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "djtrace.W001" in result.stderr + result.stdout


def test_libraries_are_instrumented_when_the_application_imports_them():
    # Celery, redis-py and the HTTP clients are not imported for the application: a project
    # that has them installed but does not use them does not carry them in memory.
    result = run_django("""
        import sys
        import django
        django.setup()
        print(sorted(m for m in ("celery", "kombu", "redis", "httpx")
                     if m in sys.modules))
        import redis
        import requests
        from celery.app.amqp import AMQP
        from kombu.transport import redis as kombu_redis
        print(hasattr(redis.client.Redis.execute_command, "__djtrace_wrapped__"),
              getattr(requests.sessions.Session.send, "_djtrace_http", False),
              hasattr(AMQP._create_task_sender, "__djtrace_wrapped__"),
              hasattr(kombu_redis.Channel._get_pool, "__djtrace_wrapped__"))
        from djtrace.integrations import _imports
        print(_imports.pending())
    """)
    assert result.returncode == 0, result.stderr
    before, after, pending = result.stdout.strip().splitlines()
    assert before == "[]"
    assert after == "True True True True"
    waiting = eval(pending)  # a printed list of module names
    assert "redis" not in waiting and "celery" not in waiting and "httpx" in waiting
