"""The Celery application: `celery -A order_service worker` / `celery -A order_service beat`.

No tracing code here. The guide connects worker_process_init to initialise OpenTelemetry and
instrument Celery in every pool process; with "djtrace" in INSTALLED_APPS, Celery's Django
fix-up runs django.setup() when the worker starts, and that configures tracing and hooks the
task lifecycle once, before the pool forks: prefork children inherit a working exporter.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "order_service.settings")

app = Celery("order_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
