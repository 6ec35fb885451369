"""Middleware of every kind the middleware spans must handle."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.deprecation import MiddlewareMixin


class MixinMiddleware(MiddlewareMixin):
    """Old-style hooks through MiddlewareMixin."""

    def process_request(self, request):
        request.mixin_seen = True

    def process_view(self, request, view_func, view_args, view_kwargs):
        return None

    def process_template_response(self, request, response):
        return response

    def process_response(self, request, response):
        response["X-Mixin"] = "1"
        return response


def function_middleware(get_response):
    """A new-style function middleware (sync only)."""

    def middleware(request):
        response = get_response(request)
        response["X-Function"] = "1"
        return response

    return middleware


class DualModeMiddleware:
    """A class middleware that runs sync or async, as the chain around it does."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        response["X-Dual"] = "sync"
        return response

    async def __acall__(self, request):
        response = await self.get_response(request)
        response["X-Dual"] = "async"
        return response


class AsyncOnlyMiddleware:
    """Async-only: Django adapts the chain around it."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = await self.get_response(request)
        response["X-Async-Only"] = "1"
        return response


class ShortCircuitMiddleware(MiddlewareMixin):
    """Answers /short-circuit/ itself (for placement tests of TracingMiddleware)."""

    def process_request(self, request):
        if request.path == "/short-circuit/":
            from django.http import HttpResponse

            return HttpResponse("short")
        return None
