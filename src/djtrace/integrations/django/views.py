"""One span per view call.

Names: a function view is its `__qualname__` (`order_list`); a class-based view is
`Class.handler` with the handler the HTTP method dispatches to (`OrderCreateView.post`); a DRF
viewset is `ViewSet.action` (`OrderViewSet.create`). The fully qualified name is in
`code.function.name`.

The view is wrapped where Django calls it: BaseHandler.make_view_atomic returns the callable
the handler is about to call (after the view middleware ran), so the span covers exactly the
view, sync or async, including ATOMIC_REQUESTS transactions.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction

from djtrace import _native
from djtrace.integrations.django import _state
from djtrace.sdk.trace import _report_internal_error

REQUEST = _state.REQUEST
_record_error = _state.record_error
_DJANGO_ERRORS = _state.DJANGO_ERRORS


class ViewInfo:
    """How to name a view, computed once per view callable."""

    __slots__ = ("cls", "actions", "function_name", "module", "_names")

    def __init__(self, view: Any) -> None:
        self._names: dict[str, tuple] = {}
        self.actions = getattr(view, "actions", None)  # DRF viewsets
        self.cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
        if self.cls is not None:
            self.module = self.cls.__module__
            self.function_name = self.cls.__qualname__
        else:
            target = view
            if not hasattr(target, "__qualname__"):
                target = getattr(view, "func", None) or type(view)  # partial, callable instance
            self.function_name = getattr(target, "__qualname__", None) or type(view).__qualname__
            self.module = getattr(target, "__module__", None) or type(view).__module__

    def name_for(self, method: str | None) -> tuple:
        """(span name, attributes) for a request with this HTTP method."""
        method = method or "GET"
        found = self._names.get(method)
        if found is None:
            found = self._names[method] = self._compute(method)
        return found

    def _compute(self, method: str) -> tuple:
        if self.cls is None:
            name = self.function_name
            full = f"{self.module}.{name}" if self.module else name
            return name, {"code.function.name": full}
        lower = method.lower()
        cls = self.cls
        if self.actions is not None:
            handler = self.actions.get(lower)
            if handler is None and lower == "head":
                handler = self.actions.get("get")
        elif lower in getattr(cls, "http_method_names", ()) and hasattr(cls, lower):
            handler = lower
        elif lower == "head" and hasattr(cls, "get"):
            handler = "get"
        else:
            handler = None
        if handler is None:
            handler = "http_method_not_allowed"
        short = f"{cls.__name__}.{handler}"
        return short, {"code.function.name": f"{self.module}.{cls.__qualname__}.{handler}"}


_infos: dict[Any, ViewInfo] = {}
_MAX_INFOS = 10000


def view_info(view: Any) -> ViewInfo:
    info = _infos.get(view)
    if info is None:
        info = ViewInfo(view)
        if len(_infos) >= _MAX_INFOS:  # views made per request: don't grow without bound
            _infos.clear()
        try:
            _infos[view] = info
        except TypeError:  # an unhashable callable
            pass
    return info


def traced_view(callable_: Any, view: Any) -> Any:
    """Wraps `callable_` (the view, possibly inside transaction.atomic) in a view span named
    after `view`."""
    info = view_info(view)
    names = info._names
    if iscoroutinefunction(callable_):

        async def traced_async(request: Any, *args: Any, **kwargs: Any) -> Any:
            rs = REQUEST.get()
            if rs is None or not rs.trace_views:
                return await callable_(request, *args, **kwargs)
            try:
                name, attrs = info.name_for(request.method)
            except Exception:  # noqa: BLE001 - never into the view: it runs without a span
                _report_internal_error("django view span")
                return await callable_(request, *args, **kwargs)
            with rs.tracer.start_as_current_span(name, attributes=attrs, record_exception=False,
                                                 set_status_on_exception=False) as span:
                try:
                    return await callable_(request, *args, **kwargs)
                except Exception as exc:
                    _record_error(span, exc)
                    raise

        traced_async.__wrapped__ = callable_
        return traced_async

    # Native: in a span named by names[request.method] (name_for's cache) while the request
    # records view spans, through traced_call.
    return _native.view_call(callable_, names, info.name_for, _DJANGO_ERRORS)


_wrapped_cache: dict[Any, Any] = {}
_originals: dict[str, Any] = {}


def _wrap(callable_: Any, view: Any) -> Any:
    """The traced wrapper of what make_view_atomic returned, cached per view when it is the
    view itself (the native make_view_atomic finds it there on later requests); `callable_`
    when wrapping fails."""
    try:
        if callable_ is view:  # the common case: the same wrapper every time
            cached = _wrapped_cache.get(view)
            if cached is None:
                cached = traced_view(view, view)
                if len(_wrapped_cache) >= _MAX_INFOS:
                    _wrapped_cache.clear()
                _wrapped_cache[view] = cached
            return cached
        return traced_view(callable_, view)
    except Exception:  # noqa: BLE001
        _report_internal_error("django view wrap")
        return callable_


def install() -> None:
    """Hooks BaseHandler.make_view_atomic. Idempotent."""
    if _originals:
        return
    from django.core.handlers import base

    orig = base.BaseHandler.make_view_atomic
    _originals["make_view_atomic"] = orig
    # Native: while the request records view spans, the view's cached wrapper or _wrap's.
    base.BaseHandler.make_view_atomic = _native.make_view_atomic(orig, _wrapped_cache, _wrap)
