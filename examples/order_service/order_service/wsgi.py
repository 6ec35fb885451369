"""WSGI entry point: `gunicorn order_service.wsgi:application -c gunicorn.conf.py`, uWSGI
(deploy/uwsgi.ini) or any WSGI server.

Unlike the guide's wsgi.py there is no initialize_tracing() to call first: "djtrace" in
INSTALLED_APPS configures tracing while get_wsgi_application() sets Django up, so it cannot be
called too late (the guide's troubleshooting issue 1).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "order_service.settings")

application = get_wsgi_application()
