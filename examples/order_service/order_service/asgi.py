"""ASGI entry point, for async servers:

    uvicorn order_service.asgi:application --host 0.0.0.0 --port 8000 --workers 2
    gunicorn order_service.asgi:application -k uvicorn.workers.UvicornWorker -c gunicorn.conf.py
    daphne -b 0.0.0.0 -p 8000 order_service.asgi:application

Tracing needs nothing more than under WSGI: requests are traced by djtrace's handler hook, which
serves ASGIHandler as well (the request span ends after the last body message, or when the
client goes away). The views of this project are synchronous; Django runs them in a thread with
the request's trace context.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "order_service.settings")

application = get_asgi_application()
