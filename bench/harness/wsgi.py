"""WSGI entry point of the benchmark (Gunicorn): the configuration's tracer, then the app."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness.settings")

from harness import stacks  # noqa: E402

stacks.before_django()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
stacks.after_django()
