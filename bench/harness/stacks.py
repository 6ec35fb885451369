"""The tracing set-up of each benchmark configuration.

    untraced      no tracing at all
    otel-100/-10  the official stack as the guide sets it up: opentelemetry-sdk TracerProvider
                  (ParentBased(TraceIdRatioBased(0.1)) at 10%), BatchSpanProcessor with its
                  defaults, OTLP exporter, DjangoInstrumentor, the database instrumentation of
                  the driver Django uses, RedisInstrumentor and CeleryInstrumentor; under
                  Gunicorn initialised in `on_starting`, as the guide's gunicorn.conf.py does
    djtrace-100/-10  "djtrace" in INSTALLED_APPS with its defaults (every layer the Django
                  integration has: request, middleware, view, template, cache, database with
                  query source and N+1 analysis, HTTP clients, and with it the Celery, Redis and
                  log correlation integrations); PII redaction on
    ddtrace       ddtrace's automatic instrumentation (`import ddtrace.auto`), sending to a
                  local sink as if it were the agent
    djtrace-base-100/-10  djtrace-100/-10 with another build of djtrace: the package installed
                  in the directory BENCH_DJTRACE_BASE names (`pip install --no-deps --target DIR`
                  of another commit), to compare two builds side by side in one run

Every exporter sends OTLP/HTTP protobuf (ddtrace: its own protocol) to a sink process of its
configuration (bench/sink.py). This module is imported by gunicorn's master: it imports neither
Django nor a tracer at module level.
"""

from __future__ import annotations

import os
import sys

CONFIGS = ("untraced", "otel-100", "otel-10", "djtrace-100", "djtrace-10", "ddtrace")
# Not in a full session: only where asked for (bench/gunicorn_slices.py --configs).
OPTIONAL_CONFIGS = ("djtrace-base-100", "djtrace-base-10")
EXCLUDED_URLS = "health/,readiness/,liveness/"  # the guide's exclusions (djtrace reads the same)

_initialised = False


def kind(config: str | None = None) -> str:
    config = config or os.environ.get("BENCH_CONFIG", "untraced")
    return config.split("-")[0]


def ratio(config: str | None = None) -> float:
    config = config or os.environ.get("BENCH_CONFIG", "untraced")
    return 0.1 if config.endswith("-10") else 1.0


def env_for(config: str, sink_url: str, ddtrace_path: str | None = None) -> dict:
    """Environment variables of a process that runs `config`, exporting to `sink_url`."""
    env = {
        "BENCH_CONFIG": config,
        "BENCH_ENDPOINT": sink_url,
        "OTEL_SERVICE_NAME": "django-order-service",
        "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": EXCLUDED_URLS,
    }
    if kind(config) == "djtrace":
        env.update({
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink_url}/v1/traces",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio" if ratio(config) < 1
                                   else "parentbased_always_on",
            "OTEL_TRACES_SAMPLER_ARG": str(ratio(config)),
        })
    elif kind(config) == "ddtrace":
        if ddtrace_path:
            env["BENCH_DDTRACE_PATH"] = ddtrace_path
        env.update({
            "DD_TRACE_AGENT_URL": sink_url,
            "DD_SERVICE": "django-order-service",
            "DD_ENV": "bench",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_TRACE_STARTUP_LOGS": "false",
            "DD_RUNTIME_METRICS_ENABLED": "false",
            "DD_TRACE_HEALTH_METRICS_ENABLED": "false",
            "DD_DATA_STREAMS_ENABLED": "false",
            "DD_PROFILING_ENABLED": "false",
            "DD_TRACE_LOG_FILE_LEVEL": "ERROR",
            "DD_TRACE_DEBUG": "false",
        })
    return env


def python_path(config: str, paths: list[str], ddtrace_path: str | None) -> str:
    """PYTHONPATH of a process that runs `config`: ddtrace's own directory comes first for the
    ddtrace configuration only (it is not installed in .venv)."""
    extra = [ddtrace_path] if kind(config) == "ddtrace" and ddtrace_path else []
    if config.startswith("djtrace-base-"):
        extra = [base_build()]
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(extra + paths + rest)


def base_build() -> str:
    """The directory of the baseline build for djtrace-base-* (BENCH_DJTRACE_BASE)."""
    path = os.environ.get("BENCH_DJTRACE_BASE", "")
    if not os.path.isfile(os.path.join(path, "djtrace", "__init__.py")):
        raise SystemExit(f"djtrace-base-*: BENCH_DJTRACE_BASE={path!r} is not a directory "
                         "holding a djtrace package (pip install --no-deps --target DIR .)")
    return path


def instrument_db(tracer_provider=None) -> str:
    """The official database instrumentation for the PostgreSQL driver Django will use
    (psycopg 3 when importable, as Django picks it). opentelemetry-instrumentation-psycopg(2)
    is used when installed; otherwise the dbapi integration it is built on, applied the same
    way (connect wrapped, the same connection attributes)."""
    from opentelemetry.instrumentation import dbapi

    attributes = {"database": "info.dbname", "port": "info.port", "host": "info.host",
                  "user": "info.user"}
    try:
        import psycopg  # noqa: F401
    except ImportError:
        psycopg = None
    if psycopg is not None:
        try:
            from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        except ImportError:
            dbapi.trace_integration(psycopg, "connect", "postgresql", attributes,
                                    tracer_provider=tracer_provider)
            return "opentelemetry-instrumentation-dbapi on psycopg 3"
        PsycopgInstrumentor().instrument(tracer_provider=tracer_provider)
        return "opentelemetry-instrumentation-psycopg"
    try:
        from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    except ImportError:
        import psycopg2

        dbapi.trace_integration(psycopg2, "connect", "postgresql", attributes,
                                tracer_provider=tracer_provider)
        return "opentelemetry-instrumentation-dbapi on psycopg2"
    Psycopg2Instrumentor().instrument(tracer_provider=tracer_provider)
    return "opentelemetry-instrumentation-psycopg2"


def official_init(django: bool = True, endpoint: str | None = None):
    """The guide's initialize_tracing(), with the exporter aimed at the local sink."""
    global _initialised
    if _initialised:
        return None
    _initialised = True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({
        "service.name": os.getenv("OTEL_SERVICE_NAME", "django-order-service"),
        "service.version": os.getenv("APP_VERSION", "1.0.0"),
        "deployment.environment": os.getenv("ENVIRONMENT", "development"),
    })
    r = ratio()
    sampler = ParentBased(TraceIdRatioBased(r)) if r < 1 else None
    provider = TracerProvider(resource=resource, sampler=sampler)
    endpoint = endpoint or os.environ["BENCH_ENDPOINT"]
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(excluded_urls=EXCLUDED_URLS)
    instrument_db()
    RedisInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    return provider


def djtrace_init_after_django() -> None:
    """djtrace's Celery, Redis and logging integrations: the Django app installs them itself
    (djtrace.integrations.django._COMPANIONS); a djtrace from before that gets them here."""
    from djtrace.integrations import django as dj

    if getattr(dj, "_COMPANIONS", None):
        return
    import djtrace.celery

    djtrace.celery.instrument()


def before_django(django: bool = True) -> None:
    """Runs in every process before Django is set up."""
    k = kind()
    if k == "ddtrace":
        path = os.environ.get("BENCH_DDTRACE_PATH")
        if path and path not in sys.path:
            sys.path.insert(0, path)
        import ddtrace.auto  # noqa: F401 - ddtrace's documented in-code activation
    elif k == "otel":
        official_init(django=django)


def after_django() -> None:
    """Runs in every process once Django is set up."""
    if kind() == "djtrace":
        djtrace_init_after_django()


def root_span(name: str):
    """A root span of this configuration's tracer (a context manager), for work outside a
    request; None when untraced."""
    k = kind()
    if k in ("otel", "djtrace"):
        from opentelemetry import trace

        return trace.get_tracer("bench").start_as_current_span(name)
    if k == "ddtrace":
        from ddtrace.trace import tracer

        return tracer.trace(name)
    return None


def flush() -> None:
    """Exports what the tracer of this process still holds (end of a short-lived process)."""
    k = kind()
    if k in ("otel", "djtrace"):
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush()
    elif k == "ddtrace":
        from ddtrace.trace import tracer

        tracer.flush()
