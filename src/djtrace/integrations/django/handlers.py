"""The SERVER span of each request, for WSGI, ASGI and Django's test clients alike.

The span starts in BaseHandler.get_response / get_response_async (every handler funnels
through them, so it covers every middleware) or, when the project placed
djtrace.middleware.TracingMiddleware in MIDDLEWARE, at that position instead (the handler hook
then stands down for that handler). It ends when the response is closed: a WSGI server closes
it after sending the last byte, ASGIHandler after its last message, the test client at once (or
when a streaming body is consumed). A request whose ASGI client goes away before that is ended
by the ASGIHandler.handle hook.

Streaming bodies are produced with the request's context attached, so spans made while
generating them are children of the request span.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.sdk.trace import _report_internal_error

REQUEST = _state.REQUEST
ROOT = _state.ROOT

try:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _OTEL_SUPPRESS_KEY
except ImportError:  # pragma: no cover
    _OTEL_SUPPRESS_KEY = None


class _MetaGetter(Getter):
    """Reads propagation headers from request.META (HTTP_TRACEPARENT for `traceparent`)."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Any) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_META_GETTER = _MetaGetter()


class _PropagationKeys:
    """The META keys the global propagator reads, recomputed when the propagator changes, so
    that a request without any of them skips extraction entirely."""

    propagator: Any = None
    keys: tuple = ()


_prop_keys = _PropagationKeys()


def _meta_keys() -> tuple:
    propagator = propagate.get_global_textmap()
    if propagator is not _prop_keys.propagator:
        try:
            fields = propagator.fields
        except Exception:  # noqa: BLE001 - a propagator without fields: always extract
            fields = None
        _prop_keys.keys = (
            tuple("HTTP_" + f.upper().replace("-", "_") for f in fields) if fields is not None
            else None)
        _prop_keys.propagator = propagator
    return _prop_keys.keys


def _extract(meta: dict) -> Any:
    keys = _meta_keys()
    if keys is not None:
        for k in keys:
            if k in meta:
                break
        else:
            return None
    return _extract_always(meta)


def _extract_always(meta: dict) -> Any:
    try:
        return propagate.extract(meta, getter=_META_GETTER)
    except Exception:  # noqa: BLE001 - a malformed header must never break the request
        _report_internal_error("django propagation extract")
        return None


EXCLUDED = object()


class RequestSpan:
    """One traced request: its span, the context tokens to undo, and what layers below need."""

    __slots__ = ("span", "request", "tracer", "scope", "parent_token", "req_token", "root_token",
                 "root", "ended", "errored", "routed", "cfg", "method", "recording",
                 "trace_middleware", "trace_views", "trace_drf", "ctx")

    def __init__(self) -> None:
        self.ended = False
        self.errored = False
        self.routed = False
        self.ctx = None

    # -- lifecycle -----------------------------------------------------------------------------

    def leave(self) -> None:
        """Detaches the request's context from the current one (the span stays open)."""
        _native.request_leave(self)

    def end(self) -> None:
        """Ends the span (once): called by the response's closers."""
        _native.request_end(self)

    def aborted(self) -> None:
        """The client went away (ASGI) before the response was complete."""
        try:
            self.span.set_attribute("djtrace.http.client_aborted", True)
        except Exception:  # noqa: BLE001
            _report_internal_error("django request aborted")

    def fail(self, exc: BaseException) -> None:
        """An exception escaped the handler, a streaming body, or reached Django's handler."""
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.aborted()
            return
        if self.errored or _state.exception_status(exc) < 500:
            return
        self.errored = True
        span = self.span
        span.record_exception(exc)
        span.set_attribute("error.type", _state.qualified_name(type(exc)))
        span.set_status(_state.STATUS_ERROR, f"{type(exc).__name__}: {exc}")

    # -- response ------------------------------------------------------------------------------

    def respond(self, response: Any) -> None:
        """Records the response (status, route, user, headers) and arranges for the span to end
        when the response is closed."""
        _native.request_respond(self, response)

    def record_route(self) -> None:
        """http.route and the span name, once the URL is resolved."""
        _native.request_record_route(self)


class _NativeHooks:
    """What the native request lifecycle hands back to Python: the cases most requests skip."""

    @staticmethod
    def enduser(rs: RequestSpan) -> None:
        user_id = _authenticated_user_id(rs.request)
        if user_id is not None:
            rs.span.set_attribute("enduser.id", user_id)

    @staticmethod
    def response_headers(rs: RequestSpan, response: Any) -> None:
        cfg = rs.cfg
        rx = cfg.capture_response_headers
        sanitize = cfg.sanitize_headers
        for name, value in response.items():
            if rx.fullmatch(name):
                redacted = sanitize is not None and sanitize.search(name)
                rs.span.set_attribute(
                    "http.response.header." + name.lower().replace("-", "_"),
                    ["[REDACTED]" if redacted else str(value)])

    @staticmethod
    def stream(rs: RequestSpan, response: Any) -> None:
        # Streaming bodies are produced with the request's context attached (not file
        # responses: the server sends those itself).
        if hasattr(response, "file_to_stream"):
            return
        rs.ctx = context_api.get_current()
        content = response.streaming_content
        if response.is_async:
            response.streaming_content = _aiter_in_context(content, rs)
        else:
            response.streaming_content = _iter_in_context(content, rs)

    @staticmethod
    def gunicorn(meta: dict, span: Any) -> None:
        # Gunicorn's access log is written after the span ends: leave it the ids.
        logging_integration = sys.modules.get("djtrace.integrations.logging")
        if logging_integration is not None and logging_integration.is_installed():
            logging_integration.remember_request(meta, span)


def _authenticated_user_id(request: Any) -> str | None:
    # Only a user that authentication already loaded: evaluating a lazy request.user here
    # would cost the application a session and a user query it never asked for.
    user = request.__dict__.get("user")
    if user is None:
        return None
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is None or wrapped.__class__ is object:  # django.utils.functional.empty
        return None
    try:
        if not wrapped.is_authenticated:
            return None
        pk = wrapped.pk
    except Exception:  # noqa: BLE001
        return None
    return None if pk is None else str(pk)


def _iter_in_context(content: Any, rs: RequestSpan):
    ctx = rs.ctx
    it = iter(content)
    try:
        while True:
            token = context_api.attach(ctx)
            req_token = REQUEST.set(rs)
            try:
                chunk = next(it)
            except StopIteration:
                return
            finally:
                REQUEST.reset(req_token)
                context_api.detach(token)
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        rs.fail(exc)
        raise
    finally:
        close = getattr(content, "close", None)
        if close is not None:
            close()


async def _aiter_in_context(content: Any, rs: RequestSpan):
    ctx = rs.ctx
    it = content.__aiter__()
    try:
        while True:
            token = context_api.attach(ctx)
            req_token = REQUEST.set(rs)
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                return
            finally:
                REQUEST.reset(req_token)
                context_api.detach(token)
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        rs.fail(exc)
        raise
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


def _wsgi_request_class() -> Any:
    try:
        from django.core.handlers.wsgi import WSGIRequest
    except Exception:  # noqa: BLE001 - the native code then reads request.scheme
        return None
    return WSGIRequest


_native.request_setup(RequestSpan, _state.RootState, REQUEST, ROOT, EXCLUDED, propagate,
                      _meta_keys, _extract_always, _NativeHooks, _report_internal_error,
                      _state.STATUS_ERROR, _wsgi_request_class(), _suppress.SUPPRESSED,
                      _OTEL_SUPPRESS_KEY)
_request_begin = _native.request_begin
_request_respond = _native.request_respond
_request_leave = _native.request_leave
_request_end = _native.request_end


def _url_for_exclusion(request: Any, meta: dict) -> str:
    host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
    return f"{request.scheme}://{host}{request.path}"


def begin(request: Any, cfg: dj_settings.DjangoSettings) -> Any:
    """Starts the request span and attaches the request's context; returns the RequestSpan,
    EXCLUDED for an excluded URL, or None when this request is already traced."""
    rs = _request_begin(request, cfg, _state.tracer())
    return _begin_python(request, cfg) if rs is NotImplemented else rs


def _begin_python(request: Any, cfg: dj_settings.DjangoSettings) -> Any:
    """begin for what request_begin leaves to Python: request header capture, or a tracer that
    is not djtrace's native one."""
    current = REQUEST.get()
    if current is not None and current.request is request:
        return None
    meta = request.META
    if cfg.excluded_re is not None and cfg.excluded_re.search(_url_for_exclusion(request, meta)):
        return EXCLUDED

    asgi_scope = getattr(request, "scope", None)
    version = asgi_scope.get("http_version") if type(asgi_scope) is dict else None
    flags = cfg.capture_all_methods | (cfg.semconv_old << 1)
    parent_ctx = _extract(meta)
    rs = RequestSpan()
    rs.request = request
    rs.cfg = cfg
    tracer = rs.tracer = _state.tracer()
    rs.parent_token = context_api.attach(parent_ctx) if parent_ctx is not None else None
    try:
        # The attributes are read off META and built natively (native/http/server_request).
        started = _native.start_http_server_span(tracer, meta, request.method, request.scheme,
                                                 request.path, version, flags)
        if started is None:  # a tracer that is not djtrace's: the same through the API
            attrs, name_method = _native.http_server_attributes(
                meta, request.method, request.scheme, request.path, version, flags)
            if cfg.capture_request_headers is not None:
                _capture_request_headers(meta, cfg, attrs)
            scope = tracer.start_as_current_span(
                name_method, kind=_state.KIND_SERVER, attributes=attrs, record_exception=False,
                set_status_on_exception=False, end_on_exit=False)
            span = scope.__enter__()
        else:
            span, name_method = started
            scope = span  # its __exit__ detaches it without ending it
            if cfg.capture_request_headers is not None:
                headers: dict = {}
                _capture_request_headers(meta, cfg, headers)
                span.set_attributes(headers)
    except BaseException:
        if rs.parent_token is not None:
            context_api.detach(rs.parent_token)
        raise
    rs.method = name_method
    rs.scope = scope
    rs.span = span
    recording = rs.recording = span.is_recording()
    rs.trace_middleware = recording and cfg.middleware_spans
    rs.trace_views = recording and cfg.view_spans
    rs.trace_drf = recording and cfg.drf_spans
    rs.req_token = REQUEST.set(rs)
    # The root for the statistics, which only a recorded request has.
    if recording:
        rs.root = _state.RootState(span)
        rs.root_token = ROOT.set(rs.root)
    else:
        rs.root = rs.root_token = None
    if type(asgi_scope) is dict:
        asgi_scope["djtrace.request_span"] = rs
    elif recording and "gunicorn.socket" in meta:
        _NativeHooks.gunicorn(meta, span)
    return rs


def _capture_request_headers(meta: dict, cfg: Any, attrs: dict) -> None:
    rx = cfg.capture_request_headers
    sanitize = cfg.sanitize_headers
    for key, value in meta.items():
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.lower().replace("_", "-")
        else:
            continue
        if rx.fullmatch(name):
            redacted = sanitize is not None and sanitize.search(name)
            attrs["http.request.header." + name.replace("-", "_")] = [
                "[REDACTED]" if redacted else str(value)]


def _suppress_enter() -> tuple:
    # An excluded request records nothing: djtrace's integrations and official
    # instrumentations see the suppression flags, and spans user code starts get a parent
    # that is valid but not sampled, so the default (parent-based) sampler drops them too
    # instead of exporting them as orphan roots. ServeExcluded does the same natively.
    token = _suppress.enter()
    ctx = context_api.set_value(_OTEL_SUPPRESS_KEY, True) if _OTEL_SUPPRESS_KEY else None
    unsampled = NonRecordingSpan(SpanContext(_native.new_trace_id(), _native.new_span_id(),
                                             is_remote=False, trace_flags=TraceFlags(0)))
    otel_token = context_api.attach(trace_api.set_span_in_context(unsampled, ctx))
    return token, otel_token


def _suppress_exit(tokens: tuple) -> None:
    token, otel_token = tokens
    if otel_token is not None:
        context_api.detach(otel_token)
    try:
        _suppress.exit(token)
    except ValueError:
        pass


def trace_sync(call: Any, request: Any, cfg: dj_settings.DjangoSettings) -> Any:
    """Runs `call(request)` (the rest of the handler) inside the request's span."""
    try:
        rs = begin(request, cfg)
    except Exception:  # noqa: BLE001
        _report_internal_error("django request start")
        rs = None
    return _serve_sync(call, request, rs)


def _serve_sync(call: Any, request: Any, rs: Any) -> Any:
    """Runs `call(request)` for what begin returned. The native get_response wrapper serves
    excluded URLs itself (request_bindings.cc, ServeExcluded) and comes here for them only when
    the tracer is not djtrace's native one or another runtime context is configured."""
    if rs is None:
        return call(request)
    if rs is EXCLUDED:
        tokens = _suppress_enter()
        try:
            return call(request)
        finally:
            _suppress_exit(tokens)
    try:
        response = call(request)
    except BaseException as exc:
        try:
            rs.fail(exc)
            _request_leave(rs)
        finally:
            _request_end(rs)
        raise
    try:
        _request_respond(rs, response)
    finally:
        _request_leave(rs)
    return response


async def trace_async(call: Any, request: Any, cfg: dj_settings.DjangoSettings) -> Any:
    """The async twin of trace_sync."""
    try:
        rs = begin(request, cfg)
    except Exception:  # noqa: BLE001
        _report_internal_error("django request start")
        rs = None
    if rs is None:
        return await call(request)
    if rs is EXCLUDED:
        tokens = _suppress_enter()
        try:
            return await call(request)
        finally:
            _suppress_exit(tokens)
    try:
        response = await call(request)
    except BaseException as exc:
        try:
            rs.fail(exc)
            rs.leave()
        finally:
            rs.end()
        raise
    try:
        rs.respond(response)
    finally:
        rs.leave()
    return response


def current_route() -> str | None:
    """The URL pattern of the request being served in this context, once resolved."""
    rs = REQUEST.get()
    if rs is None:
        return None
    match = getattr(rs.request, "resolver_match", None)
    return (match.route or "/") if match is not None else None


def current_request_span() -> Any:
    """The SERVER span of the request being served in this context, or None."""
    rs = REQUEST.get()
    return rs.span if rs is not None else None


# -- handler hooks ---------------------------------------------------------------------------

_originals: dict[str, Any] = {}


def _on_request_exception(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    # got_request_exception is sent from inside the `except` that converts an exception
    # Django did not map to a 4xx response into a 500: record it on the request span.
    rs = REQUEST.get()
    if rs is None or rs.ended:
        return
    exc = sys.exc_info()[1]
    if exc is not None:
        try:
            rs.fail(exc)
        except Exception:  # noqa: BLE001
            _report_internal_error("django request exception")


def install() -> None:
    """Hooks BaseHandler (get_response, get_response_async, load_middleware) and
    ASGIHandler.handle. Idempotent."""
    if _originals:
        return
    from django.core.handlers import base
    from django.core.signals import got_request_exception

    orig_get = base.BaseHandler.get_response
    orig_get_async = base.BaseHandler.get_response_async
    orig_load = base.BaseHandler.load_middleware
    _originals.update(get_response=orig_get, get_response_async=orig_get_async,
                      load_middleware=orig_load)

    # Native: the settings check, begin, the call, respond and leave (see trace_sync).
    get_response = _native.request_handler(orig_get, dj_settings, _state, _state.tracer,
                                           _begin_python, _serve_sync)

    async def get_response_async(self, request):
        cfg = dj_settings.get()
        if not cfg.instrument or self.__dict__.get("_djtrace_placed"):
            return await orig_get_async(self, request)
        return await trace_async(lambda r: orig_get_async(self, r), request, cfg)

    def load_middleware(self, is_async=False):
        orig_load(self, is_async)
        try:
            from djtrace.integrations.django.middleware import tracing_middleware_placed

            self._djtrace_placed = tracing_middleware_placed()
        except Exception:  # noqa: BLE001
            _report_internal_error("django load_middleware")

    get_response_async.__wrapped__ = orig_get_async
    load_middleware.__wrapped__ = orig_load
    base.BaseHandler.get_response = get_response
    base.BaseHandler.get_response_async = get_response_async
    base.BaseHandler.load_middleware = load_middleware
    got_request_exception.connect(_on_request_exception, dispatch_uid="djtrace.request_exception")

    try:
        from django.core.handlers import asgi
    except ImportError:  # pragma: no cover - part of Django
        return
    orig_handle = asgi.ASGIHandler.handle
    _originals["asgi_handle"] = orig_handle

    async def handle(self, scope, receive, send):
        try:
            await orig_handle(self, scope, receive, send)
        finally:
            # Taken out of the scope: the request holds the scope and the request span holds
            # the request, a cycle that would leave them all to the garbage collector.
            rs = scope.pop("djtrace.request_span", None) if type(scope) is dict else None
            if rs is not None and not rs.ended:
                # The client went away before the response was sent: end the span here.
                rs.aborted()
                rs.end()

    handle.__wrapped__ = orig_handle
    asgi.ASGIHandler.handle = handle
