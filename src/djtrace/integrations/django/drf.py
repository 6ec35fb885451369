"""Django REST framework: spans for the checks APIView.initial runs and for serializers.

Inside a traced request (child spans of the view span):
  `<View>.perform_authentication`  djtrace.drf.authenticator: the authenticator that succeeded
  `<View>.check_permissions`       djtrace.drf.permissions: the permission classes
  `<View>.check_object_permissions`
  `<View>.check_throttles`         djtrace.drf.throttles: the throttle classes
A check that refuses the request raises one of DRF's APIExceptions; its span then carries
djtrace.drf.exception (the class) and http.response.status_code, without an error status,
since DRF turns it into a 4xx response.

Serializers, wherever they run (views, tasks, commands):
  `<Serializer>.is_valid`          djtrace.drf.valid (bool)
  `<Serializer>.save`
  `<Serializer>.to_representation` (the first read of serializer.data; the nested serializers
                                    it calls are not spans of their own)
For `many=True` the name is the child serializer's, with djtrace.drf.many=true.

An exception DRF handles (APIException, Http404, PermissionDenied) becomes the event
`djtrace.drf.handled_exception` (exception.type, http.response.status_code) on the view span.
"""

from __future__ import annotations

import functools
from typing import Any

from djtrace.integrations import _suppress
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.sdk.trace import _report_internal_error

REQUEST = _state.REQUEST
SUPPRESSED = _suppress.SUPPRESSED


def _class_names(classes: Any) -> list[str]:
    try:
        return [getattr(c, "__name__", type(c).__name__) for c in classes]
    except TypeError:
        return []


def _check_wrapper(orig: Any, method: str, attributes: Any) -> Any:
    @functools.wraps(orig)
    def wrapper(self, *args, **kwargs):
        rs = REQUEST.get()
        if rs is None or not rs.trace_drf:
            return orig(self, *args, **kwargs)
        name = f"{type(self).__name__}.{method}"
        with rs.tracer.start_as_current_span(name, record_exception=False,
                                             set_status_on_exception=False) as span:
            try:
                result = orig(self, *args, **kwargs)
            except Exception as exc:
                _refused(span, exc)
                raise
            if attributes is not None:
                try:
                    attributes(span, self, args)
                except Exception:  # noqa: BLE001
                    _report_internal_error(f"drf {method} attributes")
            return result

    wrapper.__wrapped__ = orig
    return wrapper


def _refused(span: Any, exc: BaseException) -> None:
    status = _state.exception_status(exc)
    span.set_attribute("djtrace.drf.exception", _state.qualified_name(type(exc)))
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        _state.record_error(span, exc)


def _authenticator(span: Any, view: Any, args: tuple) -> None:
    request = args[0] if args else None
    auth = getattr(request, "successful_authenticator", None) if request is not None else None
    if auth is not None:
        span.set_attribute("djtrace.drf.authenticator", type(auth).__name__)


def _permissions(span: Any, view: Any, args: tuple) -> None:
    span.set_attribute("djtrace.drf.permissions",
                       _class_names(getattr(view, "permission_classes", ())))


def _throttles(span: Any, view: Any, args: tuple) -> None:
    names = _class_names(getattr(view, "throttle_classes", ()))
    if names:
        span.set_attribute("djtrace.drf.throttles", names)


_list_serializer: Any = None


def _serializer_name(serializer: Any, method: str) -> tuple:
    many = _list_serializer is not None and isinstance(serializer, _list_serializer)
    cls = type(serializer.child) if many else type(serializer)
    return f"{cls.__name__}.{method}", many


def _serializer_wrapper(orig: Any, method: str) -> Any:
    @functools.wraps(orig)
    def wrapper(self, *args, **kwargs):
        if SUPPRESSED.get() or not dj_settings.get().drf_spans:
            return orig(self, *args, **kwargs)
        name, many = _serializer_name(self, method)
        tracer = _state.tracer()
        attrs = {"djtrace.drf.many": True} if many else None
        with tracer.start_as_current_span(name, attributes=attrs, record_exception=False,
                                          set_status_on_exception=False) as span:
            try:
                result = orig(self, *args, **kwargs)
            except Exception as exc:
                if _state.exception_status(exc) < 500:
                    span.set_attribute("djtrace.drf.exception", _state.qualified_name(type(exc)))
                    if method == "is_valid":
                        span.set_attribute("djtrace.drf.valid", False)
                else:
                    _state.record_error(span, exc)
                raise
            if method == "is_valid":
                span.set_attribute("djtrace.drf.valid", bool(result))
            return result

    wrapper.__wrapped__ = orig
    return wrapper


def _data_property(prop: property) -> property:
    fget = prop.fget

    @functools.wraps(fget)
    def data(self):
        # Only the first, computing read: later reads return the cached `_data`.
        if "_data" in self.__dict__ or SUPPRESSED.get() or not dj_settings.get().drf_spans:
            return fget(self)
        name, many = _serializer_name(self, "to_representation")
        attrs = {"djtrace.drf.many": True} if many else None
        with _state.tracer().start_as_current_span(name, attributes=attrs):
            return fget(self)

    data.__wrapped__ = fget
    return property(data, prop.fset, prop.fdel, prop.__doc__)


def _handle_exception_wrapper(orig: Any) -> Any:
    @functools.wraps(orig)
    def handle_exception(self, exc):
        response = orig(self, exc)  # raises again when DRF does not handle `exc`
        rs = REQUEST.get()
        if rs is not None and rs.trace_drf:
            try:
                from opentelemetry import trace as trace_api

                span = trace_api.get_current_span()
                span.add_event("djtrace.drf.handled_exception", {
                    "exception.type": _state.qualified_name(type(exc)),
                    "http.response.status_code": getattr(response, "status_code", 0),
                })
            except Exception:  # noqa: BLE001
                _report_internal_error("drf handle_exception")
        return response

    handle_exception.__wrapped__ = orig
    return handle_exception


_originals: dict[tuple, Any] = {}


def install() -> bool:
    """Wraps APIView's checks and the serializers' is_valid / save / data. Idempotent;
    False when Django REST framework is not installed."""
    global _list_serializer
    if _originals:
        return True
    try:
        from rest_framework import serializers, views
    except ImportError:
        return False
    _list_serializer = serializers.ListSerializer
    api = views.APIView
    for method, attributes in (("perform_authentication", _authenticator),
                               ("check_permissions", _permissions),
                               ("check_object_permissions", None),
                               ("check_throttles", _throttles)):
        orig = api.__dict__[method]
        _originals[(api, method)] = orig
        setattr(api, method, _check_wrapper(orig, method, attributes))
    orig = api.__dict__["handle_exception"]
    _originals[(api, "handle_exception")] = orig
    api.handle_exception = _handle_exception_wrapper(orig)

    for cls in (serializers.BaseSerializer, serializers.ListSerializer):
        for method in ("is_valid", "save"):
            orig = cls.__dict__.get(method)
            if orig is None:
                continue
            _originals[(cls, method)] = orig
            setattr(cls, method, _serializer_wrapper(orig, method))
    prop = serializers.BaseSerializer.__dict__["data"]
    _originals[(serializers.BaseSerializer, "data")] = prop
    serializers.BaseSerializer.data = _data_property(prop)
    return True
