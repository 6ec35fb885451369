"""Tracing for Celery outside Django (in a Django project, "djtrace" in INSTALLED_APPS is all
it takes).

In the module that creates the Celery app::

    app = Celery("proj", broker="redis://...")
    djtrace.celery.instrument(app)

or, with no code, through the app's configuration: a `djtrace` dict (the keys of the DJTRACE
setting: service_name, exporters, celery_task_args, ...) read by instrument(), e.g.
`app.conf.djtrace = {"service_name": "worker"}`.

instrument() configures djtrace (djtrace.configure(), from OTEL_* / DJTRACE_* variables and that
dict) unless a tracer provider is already installed, then installs the Celery, Redis and
log-correlation integrations. Every pool (prefork, threads, solo), max_tasks_per_child, warm
shutdown and SIGTERM work with nothing more: no worker_process_init hook.
"""

from __future__ import annotations

from typing import Any

__all__ = ["instrument"]


def instrument(app: Any = None, **settings: Any) -> None:
    """Traces the Celery tasks of this process (all apps; `app` is read for its `djtrace`
    configuration dict). Keyword arguments are DJTRACE keys and win over that dict. Safe to
    call more than once."""
    from opentelemetry import trace

    import djtrace
    from djtrace.integrations import _settings
    from djtrace.integrations.celery import _state  # noqa: F401 - registers its keys
    from djtrace.integrations.celery import install as install_celery
    from djtrace.integrations.logging import install as install_logging
    from djtrace.integrations.redis import install as install_redis

    merged: dict = {}
    if app is not None:
        conf_value = app.conf.get("djtrace") or app.conf.get("DJTRACE")
        if conf_value:
            merged.update(conf_value)
    merged.update(settings)
    integration = {k: v for k, v in merged.items() if k in _settings._specs}
    core = {k: v for k, v in merged.items() if k not in _settings._specs}
    _settings.set_overrides(integration)
    if djtrace.get_config() is None and isinstance(trace.get_tracer_provider(),
                                                   trace.ProxyTracerProvider):
        djtrace.configure(core)
    install_celery()
    install_redis()
    install_logging()
    # A second instrument() with new settings takes effect.
    _state.load_settings()
