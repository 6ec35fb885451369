"""The Django integration: `setup()` is what `"djtrace"` in INSTALLED_APPS runs on ready().

One module per concern: settings (the DJTRACE keys and OTEL_* variables), checks (system
checks), handlers (the request span), middleware, views, drf, templates, cache, signals,
commands; db (queries, transactions, N+1) is installed when present.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from typing import Any

logger = logging.getLogger("djtrace")

_lock = threading.Lock()
_installed: dict[str, bool] = {}


def configure_sdk() -> Any:
    """Configures djtrace from DJTRACE and the environment, unless it is configured already or
    the application installed a tracer provider of its own (then that one is used)."""
    from opentelemetry import trace as trace_api

    import djtrace

    if djtrace.get_config() is not None:
        return djtrace._provider  # noqa: SLF001
    current = trace_api.get_tracer_provider()
    if not isinstance(current, trace_api.ProxyTracerProvider):
        logger.debug("djtrace: using the tracer provider the application installed")
        return current
    from django.conf import settings

    from djtrace.integrations.django import settings as dj_settings

    # Only the SDK's own keys: the integrations' keys are theirs to read and validate (an
    # unknown key is reported by system check djtrace.E002, not here).
    raw = getattr(settings, "DJTRACE", None)
    try:
        return djtrace.configure(dj_settings.core_settings(raw) if raw is not None else None)
    except djtrace.ConfigError as exc:
        # Reported again by system check djtrace.E005; the site keeps running, untraced.
        logger.error("djtrace: not configured: %s", exc)
        return None


def _parts() -> list[tuple[str, Any]]:
    from djtrace.integrations.django import (
        cache,
        commands,
        drf,
        handlers,
        middleware,
        signals,
        templates,
        views,
    )

    parts = [
        ("handlers", handlers.install),
        ("middleware", middleware.install),
        ("views", views.install),
        ("drf", drf.install),
        ("templates", templates.install),
        ("cache", cache.install),
        ("signals", signals.install),
        ("commands", commands.install),
    ]
    if templates.jinja2_configured():
        parts.append(("jinja2", templates.install_jinja2))
    return parts


def install() -> bool:
    """Installs every Django integration once; False when OTEL_PYTHON_DJANGO_INSTRUMENT=false
    (or 'django' in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS) switched them off."""
    from djtrace.integrations.django import settings as dj_settings
    from djtrace.sdk.trace import _report_internal_error

    with _lock:
        dj_settings.connect_signals()
        cfg = dj_settings.get()
        if not cfg.instrument:
            return False
        for name, install_part in _parts():
            if _installed.get(name):
                continue
            try:
                install_part()
                _installed[name] = True
            except Exception:  # noqa: BLE001 - one broken part must not stop the others
                _report_internal_error(f"django install {name}")
        if not _installed.get("db"):
            _installed["db"] = _install_db()
        if not _installed.get("other settings"):
            dj_settings.on_change(_reload_other_integrations)
            _installed["other settings"] = True
        if not _installed.get("http"):
            try:
                from djtrace.integrations import http

                http.install(disabled=cfg.disabled_instrumentations)
                http.set_enabled(cfg.http_client_spans)
                dj_settings.on_change(lambda c: http.set_enabled(c.http_client_spans))
                _installed["http"] = True
            except Exception:  # noqa: BLE001
                _report_internal_error("http clients install")
        return True


def _reload_other_integrations(_cfg: Any = None) -> None:
    """Applies a changed DJTRACE (override_settings in tests) to the keys the Celery and Redis
    integrations read once when installed (task_send_repeat_threshold...). Only the ones
    already imported: this never imports Celery or redis-py."""
    celery_state = sys.modules.get("djtrace.integrations.celery._state")
    if celery_state is not None:
        celery_state.load_settings()
    redis_integration = sys.modules.get("djtrace.integrations.redis")
    if redis_integration is not None:
        redis_integration.reload_settings()


def _install_db() -> bool:
    # The database part lives in its own module (djtrace.integrations.django.db); absent, the
    # rest works without it.
    from djtrace.sdk.trace import _report_internal_error

    name = "djtrace.integrations.django.db"
    try:
        if importlib.util.find_spec(name) is None:
            return False
    except ImportError:
        return False
    try:
        module = importlib.import_module(name)
        install_db = getattr(module, "install", None)
        if install_db is not None:
            install_db()
        return True
    except Exception:  # noqa: BLE001
        _report_internal_error("django install db")
        return False


# Integrations of the libraries a Django project runs with, installed with the Django ones so
# that "djtrace" in INSTALLED_APPS is all a project needs (each stays off when its library is
# absent). Imported before configuring, so that their DJTRACE keys are known.
_COMPANIONS = ("celery", "redis", "logging")


def setup() -> bool:
    """Configures the SDK, registers the system checks and installs the integrations."""
    from djtrace.sdk.trace import _report_internal_error

    companions = []
    for name in _COMPANIONS:
        try:
            companions.append((name, importlib.import_module(f"djtrace.integrations.{name}")))
        except Exception:  # noqa: BLE001
            _report_internal_error(f"import djtrace.integrations.{name}")
    configure_sdk()
    from djtrace.integrations.django import checks  # noqa: F401 - registers the checks

    ok = install()
    from djtrace.integrations._imports import when_imported

    for name, module in companions:
        try:
            if name == "redis":
                # Installed once the application imports the library: a project that has Celery
                # or redis-py installed but never uses them does not load them for us.
                module.install_when_imported()
            elif name == "celery":
                when_imported(name, module.install)
            else:
                module.install()
        except Exception:  # noqa: BLE001
            _report_internal_error(f"{module.__name__}.install")
    return ok


def installed() -> dict[str, bool]:
    """Which parts are installed (for tests and diagnostics)."""
    return dict(_installed)
