"""Public middleware: `"djtrace.middleware.TracingMiddleware"` in MIDDLEWARE starts the request
span at that position (see djtrace.integrations.django.middleware.TracingMiddleware)."""

from djtrace.integrations.django.middleware import TracingMiddleware

__all__ = ["TracingMiddleware"]
