"""Gunicorn configuration: `gunicorn order_service.wsgi:application -c gunicorn.conf.py`.

The guide's file, adapted. Tracing is initialised in the master in on_starting, before any
worker is forked; djtrace's exporter survives fork() (its queue is reset and its worker thread
restarted in each child), so this works with and without --preload, and nothing has to be done
again in post_fork.
"""

import multiprocessing
import os

import djtrace.integrations.logging.gunicorn

# Server socket
bind = os.getenv("GUNICORN_BIND", "0.0.0.0:8000")
backlog = 2048

# Worker processes
workers = int(os.getenv("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
worker_connections = 1000
max_requests = 1000
max_requests_jitter = 50
timeout = 30
keepalive = 5

# Logging. The guide's access log printed `trace_id=%(L)s`, which is the request time in
# seconds; djtrace's logger class provides the request's trace id as %(trace_id)s.
accesslog = "-"
errorlog = "-"
loglevel = os.getenv("LOG_LEVEL", "info")
logger_class = "djtrace.integrations.logging.gunicorn.Logger"
access_log_format = djtrace.integrations.logging.gunicorn.ACCESS_LOG_FORMAT

# Process naming
proc_name = "django-order-service"

# Gunicorn 25.1+ opens a control socket for gunicornc, by default one per user; instances that
# run side by side on one machine (the demo, tests) each need their own.
if os.getenv("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def on_starting(server):
    """Initialise tracing in the master, before workers start (as the guide does).

    Setting Django up is what initialises tracing here: "djtrace" in INSTALLED_APPS configures
    it from settings.DJTRACE and the OTEL_* variables. With --preload the application is
    already loaded and this changes nothing.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "order_service.settings")
    import django

    django.setup()


def post_worker_init(worker):
    worker.log.info("Worker %s initialized with OpenTelemetry tracing", worker.pid)
