"""Middleware: the public TracingMiddleware, and one INTERNAL span per middleware in the chain.

Span names are the dotted path as written in settings.MIDDLEWARE (for example
`django.contrib.sessions.middleware.SessionMiddleware`): unambiguous where class names repeat
(Django and DRF both have an AuthenticationMiddleware-like class), and the string a reader
searches settings for. The span of a middleware covers its `__call__`, which for a
MiddlewareMixin subclass includes process_request and process_response and everything inside
(the inner middleware and the view). The hooks Django calls from the inside of the chain get
spans of their own, named `<path>.process_view`, `<path>.process_template_response` and
`<path>.process_exception`.

The chain is wrapped as BaseHandler.load_middleware builds it (through the `import_string`
it resolves each path with), so new-style function or class middleware, MiddlewareMixin and
sync, async or dual-mode middleware are all seen the way Django sees them: a wrapper keeps the
sync_capable / async_capable flags of the factory and the coroutine-ness of the instance.
"""

from __future__ import annotations

import dis
import types
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from djtrace import _native
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.sdk.trace import _report_internal_error

REQUEST = _state.REQUEST
_record_error = _state.record_error

PUBLIC_PATHS = (
    "djtrace.middleware.TracingMiddleware",
    "djtrace.integrations.django.middleware.TracingMiddleware",
)


class TracingMiddleware:
    """Starts the request span at its place in MIDDLEWARE.

    Not needed with `"djtrace"` in INSTALLED_APPS: the request span then starts before the
    first middleware. Place it to choose where tracing starts (middleware above it run
    untraced, for instance a health-check shortcut); the handler hook then stands down, so
    nothing is traced twice. Placed anywhere but first, system check djtrace.W002 says so.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        try:  # used without the app: install the integration (configure + hooks) once
            from djtrace.integrations.django import setup

            setup()
        except Exception:  # noqa: BLE001
            _report_internal_error("TracingMiddleware setup")

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        cfg = dj_settings.get()
        if not cfg.instrument:
            return self.get_response(request)
        from djtrace.integrations.django.handlers import trace_sync

        return trace_sync(self.get_response, request, cfg)

    async def __acall__(self, request: Any) -> Any:
        cfg = dj_settings.get()
        if not cfg.instrument:
            return await self.get_response(request)
        from djtrace.integrations.django.handlers import trace_async

        return await trace_async(self.get_response, request, cfg)


_placed_cache: dict[tuple, bool] = {}


def tracing_middleware_placed(middleware: Any = None) -> bool:
    """True when MIDDLEWARE (default: settings.MIDDLEWARE) holds TracingMiddleware."""
    if middleware is None:
        from django.conf import settings

        middleware = settings.MIDDLEWARE
    key = tuple(middleware)
    cached = _placed_cache.get(key)
    if cached is None:
        cached = any(_is_tracing_middleware(p) for p in key)
        _placed_cache[key] = cached
    return cached


def _is_tracing_middleware(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return True
    try:
        from django.utils.module_loading import import_string

        return import_string(path) is TracingMiddleware
    except Exception:  # noqa: BLE001 - Django reports unimportable middleware itself
        return False


# -- per-middleware spans --------------------------------------------------------------------

class _Proxy:
    """Base of the wrappers that stand in for middleware instances in the chain."""

    _djtrace_inner: Any
    _djtrace_name: str

    def __getattr__(self, name: str) -> Any:
        # Anything else (attributes code may read off a middleware) comes from the original.
        if name.startswith("_djtrace_"):
            raise AttributeError(name)
        return getattr(self._djtrace_inner, name)


class _SyncProxy(_native.MiddlewareProxy):
    # Calling one is native (MiddlewareProxy): `self._djtrace_inner(request)`, inside a span
    # named `self._djtrace_name` (made current, exceptions recorded as record_error does) while
    # the request in REQUEST has trace_middleware set. No Python frame of ours per middleware
    # and request.
    _djtrace_inner: Any
    _djtrace_name: str
    __getattr__ = _Proxy.__getattr__


class _AsyncProxy(_Proxy):
    async def __call__(self, request: Any) -> Any:
        rs = REQUEST.get()
        if rs is None or not rs.trace_middleware:
            return await self._djtrace_inner(request)
        with rs.tracer.start_as_current_span(self._djtrace_name, record_exception=False,
                                             set_status_on_exception=False) as span:
            try:
                return await self._djtrace_inner(request)
            except Exception as exc:
                _record_error(span, exc)
                raise


def _async_hook(method: Any, name: str) -> Any:
    async def hook(self: Any, *args: Any) -> Any:
        rs = REQUEST.get()
        if rs is None or not rs.trace_middleware:
            return await method(*args)
        with rs.tracer.start_as_current_span(name, record_exception=False,
                                             set_status_on_exception=False) as span:
            try:
                return await method(*args)
            except Exception as exc:
                _record_error(span, exc)
                raise

    return hook


_HOOKS = ("process_view", "process_template_response", "process_exception")
_proxy_classes: dict[tuple, type] = {}


def _proxy_class(cls: type, is_async: bool) -> type:
    # A subclass named like the middleware's class: Django's error messages name
    # `hook.__self__.__class__.__name__`.
    key = (cls, is_async)
    made = _proxy_classes.get(key)
    if made is None:
        base = _AsyncProxy if is_async else _SyncProxy
        made = type(cls.__name__, (base,), {"__qualname__": cls.__qualname__,
                                            "__module__": cls.__module__})
        if not is_async:
            _native.middleware_proxy_class_ready(made)
        _proxy_classes[key] = made
    return made


def wrap_instance(instance: Any, path: str) -> Any:
    """A traced stand-in for a middleware instance (what a middleware factory returned)."""
    is_async = iscoroutinefunction(instance)
    cls = _proxy_class(type(instance), is_async)
    proxy = cls.__new__(cls)
    proxy._djtrace_inner = instance
    proxy._djtrace_name = path
    if is_async:
        markcoroutinefunction(proxy)
    for hook in _HOOKS:
        method = getattr(instance, hook, None)
        if method is None:
            continue
        name = f"{path}.{hook}"
        if iscoroutinefunction(method):
            setattr(proxy, hook, types.MethodType(_async_hook(method, name), proxy))
        else:
            # Native, like the proxy's __call__: no Python frame of ours per call.
            setattr(proxy, hook, _native.middleware_hook(method, name))
    return proxy


_CALLS = ("CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX")


def _starts_at(ins: dis.Instruction) -> tuple | None:
    """Where the expression an instruction belongs to starts (Python 3.11+), else None."""
    p = getattr(ins, "positions", None)
    return None if p is None or p.lineno is None else (p.lineno, p.col_offset)


def get_response_calls(code: types.CodeType) -> list[tuple[int, int]]:
    """The byte ranges of `code`'s calls to get_response (`self.get_response(request)`, or a
    function middleware's `get_response(request)`): from each call instruction to the next
    instruction, which covers the offset a frame executing the call reports.

    A call is get_response's when its expression starts where the loaded get_response does,
    so that a call in its arguments (`self.get_response(prepare(request))`) stays the
    middleware's own work; without positions (Python 3.10), the first call after the load."""
    ranges = []
    pending: list = []  # where each loaded, not yet called get_response starts
    instructions = list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        if ins.argval == "get_response" and ins.opname.startswith("LOAD_"):
            pending.append(_starts_at(ins))
        elif pending and ins.opname in _CALLS and (start := _starts_at(ins)) in pending:
            pending.remove(start)
            end = instructions[i + 1].offset if i + 1 < len(instructions) else ins.offset + 2
            ranges.append((ins.offset, end))
    return ranges


def register_pass_through(instance: Any) -> None:
    """Tells the query-source walk that a middleware's frame calling get_response only passes
    the request on: a query below it (a generic view's, a serializer's) is not the
    middleware's, whose line would otherwise be the first of the application's on the stack."""
    function = instance
    if not isinstance(instance, types.FunctionType):
        function = next((klass.__dict__["__call__"] for klass in type(instance).__mro__
                         if "__call__" in klass.__dict__), None)
    code = getattr(function, "__code__", None)
    if code is None:
        return
    ranges = get_response_calls(code)
    if ranges:
        _native.db_pass_through(code, ranges)


class _Factory:
    """Stands in for a middleware class or factory function in load_middleware."""

    def __init__(self, factory: Any, path: str) -> None:
        self._factory = factory
        self._path = path
        self.sync_capable = getattr(factory, "sync_capable", True)
        self.async_capable = getattr(factory, "async_capable", False)
        self.__wrapped__ = factory

    def __call__(self, get_response: Any) -> Any:
        instance = self._factory(get_response)  # MiddlewareNotUsed propagates, as it should
        if instance is None:
            return None
        try:
            register_pass_through(instance)
        except Exception:  # noqa: BLE001 - call sites only: the middleware is still traced
            _report_internal_error("django middleware pass-through")
        try:
            return wrap_instance(instance, self._path)
        except Exception:  # noqa: BLE001
            _report_internal_error("django middleware wrap")
            return instance


_originals: dict[str, Any] = {}


def install() -> None:
    """Wraps each middleware as BaseHandler.load_middleware imports it. Idempotent."""
    if _originals:
        return
    from django.core.handlers import base

    orig_import = base.import_string
    _originals["import_string"] = orig_import

    def import_string(path: str) -> Any:
        obj = orig_import(path)
        try:
            # Wrapped even while middleware_spans is off: the wrappers check the setting on
            # each call, so that switching it on later (override_settings) takes effect.
            if (not dj_settings.get().instrument or obj is TracingMiddleware
                    or not callable(obj) or isinstance(obj, _Factory)):
                return obj
            return _Factory(obj, path)
        except Exception:  # noqa: BLE001
            _report_internal_error("django middleware import")
            return obj

    import_string.__wrapped__ = orig_import
    base.import_string = import_string
