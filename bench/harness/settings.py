"""Django settings of every benchmark process: the target app's own settings
(BENCH_BASE_SETTINGS) with the database, cache, Celery broker, logging and the djtrace app set
per configuration (BENCH_CONFIG), so that every configuration runs the same app on the same
services and differs only in its tracing."""

import importlib
import os

_base = importlib.import_module(os.environ["BENCH_BASE_SETTINGS"])
globals().update({k: v for k, v in vars(_base).items() if k.isupper()})

CONFIG = os.environ.get("BENCH_CONFIG", "untraced")
_DJTRACE = CONFIG.startswith("djtrace")
_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:63809")

DEBUG = False
ALLOWED_HOSTS = ["*"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB_NAME", "djtrace_bench"),
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("BENCH_PG_PORT", "54339"),
        # Persistent connections under WSGI. Under ASGI Django opens a connection per request
        # thread, so persistent ones pile up until PostgreSQL refuses more: there the harness
        # sets 0, as Django's documentation advises for ASGI without a pool.
        "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "600")),
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"{_REDIS}/2",
    }
}
CELERY_BROKER_URL = f"{_REDIS}/3"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = False

INSTALLED_APPS = [a for a in globals().get("INSTALLED_APPS", [])
                  if a not in ("djtrace", "djtrace.apps.DjtraceConfig")]
if _DJTRACE:
    INSTALLED_APPS.append("djtrace")
else:
    # An app that lists djtrace's middleware itself would otherwise import it untraced.
    MIDDLEWARE = [m for m in globals().get("MIDDLEWARE", []) if not m.startswith("djtrace.")]

# The exporter, the sampler and the endpoint come from OTEL_* variables (bench/harness/stacks.py),
# the same for every app; everything else the app asks of djtrace stays.
DJTRACE = {k: v for k, v in dict(globals().get("DJTRACE") or {}).items()
           if not k.startswith(("otlp_", "exporters", "sampler", "file_", "console", "bsp_"))}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "ERROR"},
}
