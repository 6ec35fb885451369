"""Settings of the order service, the application of the djtrace Django guide.

Two stacks, chosen by ORDER_SERVICE_STACK:

- "embedded" (the default): nothing to install. SQLite, Celery over kombu's filesystem transport
  (a real worker process, the messages are files under var/broker/), Django's local-memory
  cache, e-mails written to var/mail/, traces printed as trees and appended to
  var/traces.jsonl (OTLP/JSON lines).
- "full": PostgreSQL (DB_*), Redis as Celery broker and Django cache (REDIS_URL), traces sent
  over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT (a collector).

Every value can be overridden from the environment; the defaults are for development only.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("ORDER_SERVICE_VAR", BASE_DIR / "var"))
STACK = os.getenv("ORDER_SERVICE_STACK", "embedded")
if STACK not in ("embedded", "full"):
    raise ValueError(f"ORDER_SERVICE_STACK must be 'embedded' or 'full', got {STACK!r}")
EMBEDDED = STACK == "embedded"

# SECURITY WARNING: keep the secret key used in production secret (it also signs the API's
# JWTs unless JWT_SIGNING_KEY is set).
SECRET_KEY = os.getenv("DJANGO_SECRET_KEY", "dev-secret-key-change-in-production")
DEBUG = os.getenv("DEBUG", "False") == "True"
ALLOWED_HOSTS = os.getenv("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Tracing: requests, middleware, views, DRF, templates, cache, ORM queries (with N+1
    # detection), management commands, Celery tasks, Redis and outgoing HTTP calls. Nothing
    # else to call: no initialize_tracing(), no instrumentor, no worker_process_init hook.
    "djtrace",
    "orders",
]

MIDDLEWARE = [
    # djtrace starts the request span before the first middleware; each middleware below gets
    # a span of its own.
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After AuthenticationMiddleware: they read request.user.
    "orders.middleware.CustomHeaderMiddleware",
    "orders.middleware.PerformanceMonitoringMiddleware",
]

ROOT_URLCONF = "order_service.urls"
WSGI_APPLICATION = "order_service.wsgi.application"
ASGI_APPLICATION = "order_service.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if EMBEDDED:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "order_service.sqlite3",
            "OPTIONS": {
                # Gunicorn workers, the Celery worker and management commands write to the
                # same file: WAL lets readers run beside the writer, IMMEDIATE transactions
                # take the write lock up front instead of failing half-way, and the timeout
                # waits for it.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.getenv("DB_NAME", "orders"),
            "USER": os.getenv("DB_USER", "postgres"),
            "PASSWORD": os.getenv("DB_PASSWORD", ""),
            "HOST": os.getenv("DB_HOST", "127.0.0.1"),
            "PORT": os.getenv("DB_PORT", "54329"),
            "CONN_MAX_AGE": int(os.getenv("DB_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the full stack's Celery broker and Django cache (the health checks ping it when set).
REDIS_URL = os.getenv("REDIS_URL", "" if EMBEDDED else "redis://127.0.0.1:63799/0")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "order-service",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery (read by order_service/celery.py through the CELERY_ namespace).
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.getenv(
    "CELERY_BROKER_URL", "filesystem://localhost//" if EMBEDDED else REDIS_URL
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder for both directions: producers (web, commands) write message files into it,
    # the worker reads them from it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "messages"),
        "data_folder_out": str(BROKER_DIR / "messages"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    for folder in ("messages", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    # Broadcast control messages need a fanout exchange the filesystem transport only
    # emulates; the embedded worker does without remote control.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_RESULT_BACKEND = os.getenv("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# One queue per deployment when several share a broker.
CELERY_TASK_DEFAULT_QUEUE = os.getenv("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The beat schedule: enqueue the orders still pending (celery -A order_service beat).
CELERY_BEAT_SCHEDULE = {
    "enqueue-pending-orders": {
        "task": "orders.tasks.enqueue_pending_orders",
        "schedule": float(os.getenv("PENDING_ORDERS_INTERVAL", "300")),
        "kwargs": {"limit": 100},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# E-mail: the order confirmations the worker sends. By default they are written to files in
# var/mail/; EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST... send them.
EMAIL_BACKEND = os.getenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.getenv("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.getenv("EMAIL_USE_TLS", "False") == "True"
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "noreply@example.com")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orders.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}

# Session login for the HTML views (OrderCreateView): the admin's login page.
LOGIN_URL = "admin:login"

# JWT (HS256) for the API: POST /api/token/ with a username and password returns a token to
# send as "Authorization: Bearer <token>".
JWT_SIGNING_KEY = os.getenv("JWT_SIGNING_KEY", SECRET_KEY)
JWT_LIFETIME_SECONDS = int(os.getenv("JWT_LIFETIME_SECONDS", "3600"))

# The payment gateway PaymentService charges (examples/order_service/fake_gateway.py in
# development: no real one is reachable from here).
PAYMENT_GATEWAY_URL = os.getenv("PAYMENT_GATEWAY_URL", "http://127.0.0.1:8765")
PAYMENT_GATEWAY_TIMEOUT = float(os.getenv("PAYMENT_GATEWAY_TIMEOUT", "10"))

# Orders above this amount get the high-value validation in the worker.
HIGH_VALUE_ORDER_AMOUNT = 1000
# PerformanceMonitoringMiddleware flags requests slower than this.
SLOW_REQUEST_THRESHOLD_MS = float(os.getenv("SLOW_REQUEST_THRESHOLD_MS", "500"))

# Tracing. The environment wins over this dict (OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER,
# OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_PYTHON_DJANGO_EXCLUDED_URLS, DJTRACE_PII_PROFILE, ...), so
# the worker, beat and each deployment name and route their spans without touching settings.
DJTRACE = {
    "service_name": "django-order-service",
    "resource_attributes": {
        "service.version": os.getenv("APP_VERSION", "1.0.0"),
        "deployment.environment.name": os.getenv("ENVIRONMENT", "development"),
    },
    # Probes hit these every few seconds: no spans, and nothing below them is recorded.
    "excluded_urls": [r"/(health|readiness|liveness)/$", r"/favicon\.ico$", r"/static/"],
    # GDPR profile: e-mail addresses, phone numbers, IP addresses and the like are redacted
    # natively before export, on top of the default secrets (tokens, passwords, cards...).
    "pii": "gdpr",
    # Flag a statement run this many times from one call site in one request, task or
    # command (an event `djtrace.n_plus_one` on its root span).
    "n_plus_one_threshold": 5,
    # The same for one Celery task sent this many times from one line, as the loop of
    # process_pending_orders does (a group would send one message): `djtrace.celery.repeated_send`.
    "task_send_repeat_threshold": 5,
}
if EMBEDDED:
    DJTRACE["exporters"] = ["console", "file"]
    DJTRACE["file_path"] = str(VAR_DIR / "traces.jsonl")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(name)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

VAR_DIR.mkdir(parents=True, exist_ok=True)
