"""The guide's two custom middleware, corrected.

What the guide got wrong:

- CustomHeaderMiddleware read request.user in process_request. API requests authenticate in
  the view (DRF's JWTAuthentication), so at that point every API caller is still anonymous.
  DRF hands the user it authenticated back to the Django request: after the view, it is known.
- It recorded `user.username`, personal data the trace does not need; djtrace already puts the
  user's primary key on the request span as `enduser.id` (DJTRACE["capture_enduser"]).
- It measured `len(response.content)` on every response: a streaming response has no
  `content` and the attribute raised.
- PerformanceMonitoringMiddleware opened a `view_execution` span inside process_view and closed
  it when process_view returned, i.e. before the view ran: the span timed nothing, and the view
  span djtrace makes already covers the view. Timing belongs around get_response, in __call__.
  Its view name came from view_func.__name__, which is "view" for every class-based view and
  viewset; the resolver match names the view.

- It annotated trace.get_current_span(), assuming that is the request's span. With every
  middleware traced (djtrace does so by default), the current span inside a middleware is that
  middleware's own span; djtrace.request_span() is the request's SERVER span, wherever it is
  called from.
"""

import time

from django.conf import settings

import djtrace


class CustomHeaderMiddleware:
    """Records the X-Custom request header and whether the caller was authenticated."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        span = djtrace.request_span()
        span.set_attribute("http.custom_header", request.headers.get("X-Custom", "none"))

        response = self.get_response(request)

        # After the view: request.user is whoever authenticated, session or bearer token.
        span.set_attribute("request.user.authenticated", request.user.is_authenticated)
        if not response.streaming:
            span.set_attribute("http.response.body.size", len(response.content))
        return response


class PerformanceMonitoringMiddleware:
    """Flags slow requests: duration and view name on the span, an event past the threshold
    (settings.SLOW_REQUEST_THRESHOLD_MS)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.threshold_ms = settings.SLOW_REQUEST_THRESHOLD_MS

    def __call__(self, request):
        span = djtrace.request_span()
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - start) * 1000.0

        match = request.resolver_match
        if match is not None:
            span.set_attribute("view.name", match.view_name)
            span.set_attribute("view.module", match.func.__module__)
        span.set_attribute("app.request.duration_ms", round(elapsed_ms, 3))
        if elapsed_ms >= self.threshold_ms:
            span.set_attribute("app.request.slow", True)
            span.add_event("slow_request", {"duration_ms": round(elapsed_ms, 3),
                                            "threshold_ms": self.threshold_ms})
        return response
