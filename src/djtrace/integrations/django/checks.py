"""Django system checks for djtrace. The ids are stable; each is tested.

Errors (a bad value falls back to its default at run time; the check says so):
  djtrace.E001  DJTRACE is not a dict.
  djtrace.E002  DJTRACE has a key no part of djtrace knows (a typo).
  djtrace.E003  A Django-integration key has a value of the wrong type or range.
  djtrace.E004  A regular expression (excluded_urls, OTEL_PYTHON_*_EXCLUDED_URLS,
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*) does not compile.
  djtrace.E005  An SDK setting (in DJTRACE or the OTEL_* environment) is invalid: the message
                of djtrace.config.ConfigError.
Warnings:
  djtrace.W001  The PII profile is "off" (DJTRACE["pii"] or DJTRACE_PII_PROFILE) while DEBUG is
                False: personal data and secrets would be exported unredacted.
  djtrace.W002  djtrace.middleware.TracingMiddleware is in MIDDLEWARE but not first: the
                middleware above it are neither traced nor inside the request span.
  djtrace.W003  The official OpenTelemetry Django middleware is installed too: every request
                would get two SERVER spans.
"""

from __future__ import annotations

import os
from typing import Any

from django.core import checks

from djtrace.integrations.django import settings as dj_settings

_OFFICIAL_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware"


@checks.register("djtrace")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    from django.conf import settings

    raw = getattr(settings, "DJTRACE", None)
    loaded = dj_settings.load(raw)
    messages: list = []
    for p in loaded.problems:
        messages.append(checks.Error(p.message, hint=_hint(p), obj="DJTRACE", id=p.id))
    if isinstance(raw, dict) or raw is None:
        messages.extend(_core_errors(raw or {}, loaded))
    return messages


def _hint(problem: dj_settings.SettingProblem) -> str | None:
    if problem.id == dj_settings.E_UNKNOWN_KEY:
        return ("Check the spelling; the settings are listed in "
                "djtrace.integrations.django.settings.")
    if problem.id == dj_settings.E_BAD_REGEX:
        return "Patterns are Python regular expressions, separated by commas."
    return None


def _core_errors(raw: dict, loaded: dj_settings.DjangoSettings) -> list:
    from djtrace.config import ConfigError, from_sources

    unknown = {p.key for p in loaded.problems if p.id == dj_settings.E_UNKNOWN_KEY}
    core = {k: v for k, v in raw.items() if k not in unknown}
    try:
        from_sources(core)
    except ConfigError as exc:
        return [checks.Error(str(exc), obj="DJTRACE", id=dj_settings.E_CORE)]
    return []


def pii_profile() -> str | None:
    """The PII profile asked for by DJTRACE_PII_PROFILE or DJTRACE["pii"] (None: default)."""
    from django.conf import settings

    env = os.environ.get("DJTRACE_PII_PROFILE", "").strip()
    if env:
        return env.lower()
    raw = getattr(settings, "DJTRACE", None)
    if isinstance(raw, dict) and raw.get("pii") is not None:
        value = raw["pii"]
        if isinstance(value, dict):
            value = value.get("profile")
        return str(value).strip().lower() if value is not None else None
    return None


@checks.register("djtrace")
def check_pii_profile(app_configs: Any = None, **kwargs: Any) -> list:
    from django.conf import settings

    if pii_profile() == "off" and not settings.DEBUG:
        return [checks.Warning(
            "The PII profile is 'off' while DEBUG is False: personal data and secrets in spans "
            "will be exported unredacted.",
            hint="Use the 'default' or 'gdpr' profile in production.",
            obj="DJTRACE", id="djtrace.W001")]
    return []


@checks.register("djtrace")
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list:
    from django.conf import settings

    from djtrace.integrations.django.middleware import _is_tracing_middleware

    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    messages = []
    for index, path in enumerate(middleware):
        if _is_tracing_middleware(path) and index != 0:
            above = ", ".join(middleware[:index])
            messages.append(checks.Warning(
                f"{path} is not the first entry of MIDDLEWARE: {above} run outside the request "
                "span and are not traced.",
                hint="Move it to the top of MIDDLEWARE, or remove it: with 'djtrace' in "
                     "INSTALLED_APPS the request span starts before the first middleware.",
                obj="MIDDLEWARE", id="djtrace.W002"))
            break
    if any(str(p).startswith(_OFFICIAL_MIDDLEWARE) for p in middleware):
        messages.append(checks.Warning(
            "The OpenTelemetry Django instrumentation (DjangoInstrumentor) is active as well: "
            "each request would be traced twice.",
            hint="Remove DjangoInstrumentor().instrument(); djtrace traces requests itself.",
            obj="MIDDLEWARE", id="djtrace.W003"))
    return messages
