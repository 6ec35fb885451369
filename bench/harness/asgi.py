"""ASGI entry point of the benchmark (uvicorn): the configuration's tracer, then the app."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness.settings")

from harness import stacks  # noqa: E402

stacks.before_django()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
stacks.after_django()
