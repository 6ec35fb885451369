"""TracerProvider, Tracer and Span with the API of opentelemetry.sdk.trace, recorded natively.

A span is a native object: attributes, events and status go straight into C++ storage, and
ending it hands it to the native processors without building any Python object. Python only
appears on rare paths: exceptions, span processors written in Python, samplers written in
Python, and reading a span back (ReadableSpan).
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import threading
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from djtrace import _native
from djtrace.sdk import _context  # noqa: F401 - installs the context glue
from djtrace.sdk.resources import Resource
from djtrace.sdk.trace.sampling import Decision, Sampler, sampler_from_env

_native.set_span_kinds(SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER,
                       SpanKind.CONSUMER)

logger = logging.getLogger("djtrace")

# Flags understood by the native span (native/python/ext.cc: SpanFlags).
_ATTACH = 1
_END_ON_EXIT = 2
_RECORD_EXCEPTION = 4
_SET_STATUS = 8
_KEEP_READABLE = 32  # the span keeps what it recorded for the read API after its end

_KIND_INTERNAL = SpanKind.INTERNAL
_STATUS_UNSET = StatusCode.UNSET
_STATUS_OK = StatusCode.OK


def _otlp_kind(kind: SpanKind) -> int:
    return 1 if kind is _KIND_INTERNAL else kind.value + 1


def _context_tuple(ctx: SpanContext) -> tuple:
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    return (ctx.trace_id, ctx.span_id, int(ctx.trace_flags), ctx.is_remote, state)


def _links(links: Sequence[trace_api.Link] | None) -> list | None:
    if not links:
        return None
    out = []
    for link in links:
        ctx = getattr(link, "context", None)
        if ctx is None or not ctx.is_valid:
            continue
        out.append((_context_tuple(ctx), link.attributes or None))
    return out


def _span_context_from_tuple(t: tuple) -> SpanContext:
    trace_id, span_id, flags, remote, state = t
    return SpanContext(
        trace_id,
        span_id,
        is_remote=remote,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else DEFAULT_TRACE_STATE,
    )


_NATIVE_UNLIMITED = (1 << 32) - 1  # native/trace/recording.h: SpanLimits::kUnlimited


class SpanLimits:
    """Limits on what one span records; None reads the OTEL_* variable or the default."""

    UNSET = -1

    def __init__(
        self,
        max_attributes: int | None = None,
        max_events: int | None = None,
        max_links: int | None = None,
        max_span_attributes: int | None = None,
        max_event_attributes: int | None = None,
        max_link_attributes: int | None = None,
        max_attribute_length: int | None = None,
        max_span_attribute_length: int | None = None,
    ) -> None:
        env = os.environ

        def pick(value, *names, default):
            if value is not None:
                if value == self.UNSET:
                    return None
                return self._check(value, "SpanLimits")
            for name in names:
                raw = env.get(name, "").strip()
                if raw:
                    try:
                        parsed = int(raw)
                    except ValueError:
                        raise ValueError(
                            f"{name} must be a non-negative integer, got {raw!r}") from None
                    return self._check(parsed, name)
            return default

        # As the official SDK: an unset general count (absent or SpanLimits.UNSET) leaves the
        # specific counts at their default of 128; it never makes them unlimited.
        general_count = pick(max_attributes, "OTEL_ATTRIBUTE_COUNT_LIMIT", default=None)
        if general_count is None:
            general_count = 128
        general_length = pick(max_attribute_length, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                              default=None)
        self.max_attributes = general_count
        self.max_attribute_length = general_length
        self.max_span_attributes = pick(
            max_span_attributes, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", default=general_count
        )
        self.max_events = pick(max_events, "OTEL_SPAN_EVENT_COUNT_LIMIT", default=128)
        self.max_links = pick(max_links, "OTEL_SPAN_LINK_COUNT_LIMIT", default=128)
        self.max_event_attributes = pick(
            max_event_attributes, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", default=general_count
        )
        self.max_link_attributes = pick(
            max_link_attributes, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", default=general_count
        )
        self.max_span_attribute_length = pick(
            max_span_attribute_length,
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            default=general_length,
        )

    @staticmethod
    def _check(value: int, name: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        return value

    def _native_tuple(self) -> tuple:
        # None (SpanLimits.UNSET) means no limit; the native core spells that as the largest
        # uint32 (SpanLimits::kUnlimited), whereas a None it skips would leave its default 128.
        def native(limit: int | None) -> int:
            return _NATIVE_UNLIMITED if limit is None else min(limit, _NATIVE_UNLIMITED)

        return (
            native(self.max_span_attributes),
            native(self.max_span_attribute_length),
            native(self.max_events),
            native(self.max_links),
            native(self.max_event_attributes),
            native(self.max_link_attributes),
            native(self.max_attribute_length),
        )

    def __repr__(self) -> str:
        return (
            f"SpanLimits(max_span_attributes={self.max_span_attributes}, "
            f"max_events_attributes={self.max_event_attributes}, "
            f"max_link_attributes={self.max_link_attributes}, "
            f"max_attributes={self.max_attributes}, "
            f"max_events={self.max_events}, max_links={self.max_links}, "
            f"max_attribute_length={self.max_attribute_length})"
        )


class InstrumentationScope:
    """Name, version, schema url and attributes of the code that created a span."""

    __slots__ = ("_name", "_version", "_schema_url", "_attributes")

    def __init__(self, name: str, version: str | None = None, schema_url: str | None = None,
                 attributes: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._version = version
        self._schema_url = schema_url or ""
        self._attributes = dict(attributes or {})

    name = property(lambda self: self._name)
    version = property(lambda self: self._version)
    schema_url = property(lambda self: self._schema_url)
    attributes = property(lambda self: MappingProxyType(self._attributes))

    def __repr__(self) -> str:
        return f"InstrumentationScope({self._name}, {self._version}, {self._schema_url})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstrumentationScope) and (
            self._name, self._version, self._schema_url
        ) == (other._name, other._version, other._schema_url)

    def __hash__(self) -> int:
        return hash((self._name, self._version, self._schema_url))


class Event:
    """A span event as read back from a finished span."""

    __slots__ = ("_name", "_timestamp", "_attributes", "_dropped")

    def __init__(self, name: str, attributes: Mapping[str, Any] | None = None,
                 timestamp: int | None = None, dropped: int = 0) -> None:
        self._name = name
        self._attributes = MappingProxyType(dict(attributes or {}))
        self._timestamp = timestamp
        self._dropped = dropped

    name = property(lambda self: self._name)
    timestamp = property(lambda self: self._timestamp)
    attributes = property(lambda self: self._attributes)
    dropped_attributes = property(lambda self: self._dropped)

    def __repr__(self) -> str:
        return f"Event({self._name!r}, {dict(self._attributes)!r})"


class _ReadLink(trace_api.Link):
    def __init__(self, context: SpanContext, attributes: Mapping[str, Any], dropped: int) -> None:
        super().__init__(context, attributes)
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped


class ReadableSpan:
    """A finished (or snapshotted) span, with the read API of opentelemetry.sdk.trace."""

    def __init__(self, data: dict) -> None:
        self._d = data
        self._resource: Resource | None = None

    @property
    def name(self) -> str:
        return self._d["name"]

    def get_span_context(self) -> SpanContext:
        return self.context

    @property
    def context(self) -> SpanContext:
        d = self._d
        state = d["trace_state"]
        return SpanContext(
            d["trace_id"],
            d["span_id"],
            is_remote=False,
            trace_flags=TraceFlags(d["trace_flags"]),
            trace_state=TraceState.from_header([state]) if state else DEFAULT_TRACE_STATE,
        )

    @property
    def parent(self) -> SpanContext | None:
        d = self._d
        if d["parent_span_id"] is None:
            return None
        return SpanContext(d["trace_id"], d["parent_span_id"], is_remote=d["parent_is_remote"],
                           trace_flags=TraceFlags(d["trace_flags"]))

    @property
    def kind(self) -> SpanKind:
        return SpanKind(max(self._d["kind"] - 1, 0))

    start_time = property(lambda self: self._d["start_time"])
    end_time = property(lambda self: self._d["end_time"])
    dropped_attributes = property(lambda self: self._d["dropped_attributes"])
    dropped_events = property(lambda self: self._d["dropped_events"])
    dropped_links = property(lambda self: self._d["dropped_links"])

    @property
    def attributes(self) -> Mapping[str, Any]:
        return MappingProxyType(self._d["attributes"])

    @property
    def events(self) -> tuple:
        return tuple(Event(n, a, t, dr) for (n, t, a, dr) in self._d["events"])

    @property
    def links(self) -> tuple:
        return tuple(_ReadLink(_span_context_from_tuple(c), a, dr)
                     for (c, a, dr) in self._d["links"])

    @property
    def status(self) -> Status:
        code = StatusCode(self._d["status_code"] if self._d["status_code"] != 0 else 0)
        desc = self._d["status_message"] or None
        return Status(code, desc) if code is StatusCode.ERROR else Status(code)

    @property
    def resource(self) -> Resource:
        if self._resource is None:
            res = self._d["resource"]
            self._resource = Resource(res[0], res[1]) if res else Resource.get_empty()
        return self._resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope | None:
        s = self._d["scope"]
        if not s:
            return None
        return InstrumentationScope(s[0], s[1] or None, s[2] or None, s[3])

    instrumentation_info = instrumentation_scope

    def to_json(self, indent: int | None = 4) -> str:
        import json

        d = self._d
        return json.dumps(
            {
                "name": d["name"],
                "context": {
                    "trace_id": f"0x{d['trace_id']:032x}",
                    "span_id": f"0x{d['span_id']:016x}",
                    "trace_state": d["trace_state"],
                },
                "kind": str(self.kind),
                "parent_id": (None if d["parent_span_id"] is None
                              else f"0x{d['parent_span_id']:016x}"),
                "start_time": d["start_time"],
                "end_time": d["end_time"],
                "status": {"status_code": self.status.status_code.name},
                "attributes": d["attributes"],
                "events": [{"name": n, "timestamp": t, "attributes": a}
                           for (n, t, a, _) in d["events"]],
                "links": [{"context": {"trace_id": f"0x{c[0]:032x}", "span_id": f"0x{c[1]:016x}"},
                           "attributes": a} for (c, a, _) in d["links"]],
                "resource": {"attributes": self.resource.attributes,
                             "schema_url": self.resource.schema_url},
            },
            indent=indent,
            default=str,
        )

    def __repr__(self) -> str:
        return f"ReadableSpan(name={self.name!r}, context={self.context!r})"


class _SpanMethods:
    """Python methods of the native span type (attached to _native.Span below): the rare paths
    and the read API. The hot methods (set_attribute, add_event, end, ...) are native."""

    def get_span_context(self) -> SpanContext:
        ctx = self._context_cache
        if ctx is None:
            ctx = _span_context_from_tuple(self._context_tuple())
            self._context_cache = ctx
        return ctx

    @property
    def context(self) -> SpanContext:
        return self.get_span_context()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            self._set_status(status.status_code.value, status.description)
        elif isinstance(status, StatusCode):
            self._set_status(status.value, description)

    def record_exception(self, exception: BaseException,
                         attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        if not self.is_recording():
            return
        try:
            stacktrace = "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            )
            module = type(exception).__module__
            qualname = type(exception).__qualname__
            exc_type = f"{module}.{qualname}" if module and module != "builtins" else qualname
            attrs: dict[str, Any] = {
                "exception.type": exc_type,
                "exception.message": str(exception),
                "exception.stacktrace": stacktrace,
                "exception.escaped": str(escaped),
            }
            if attributes:
                attrs.update(attributes)
            self.add_event("exception", attrs, timestamp)
        except Exception:  # noqa: BLE001 - never raise into the application
            _report_internal_error("record_exception")

    def _on_exception(self, exc: BaseException, flags: int) -> None:
        # As start_as_current_span (use_span) does: Exception only, escaped=False. As
        # `with tracer.start_span(...)` (Span.__exit__) does: any exception, escaped=True.
        as_current = bool(flags & _ATTACH)
        if as_current and not isinstance(exc, Exception):
            return
        if flags & _RECORD_EXCEPTION:
            self.record_exception(exc, escaped=not as_current)
        if flags & _SET_STATUS:
            self._set_status(StatusCode.ERROR.value, f"{type(exc).__name__}: {exc}")

    # Read access of the official SDK's Span, built on demand.
    def _readable(self) -> ReadableSpan | None:
        data = self._data()
        return ReadableSpan(data) if data is not None else None

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def attributes(self) -> Mapping[str, Any]:
        data = self._data()
        return MappingProxyType(data["attributes"] if data else {})

    @property
    def events(self) -> tuple:
        r = self._readable()
        return r.events if r else ()

    @property
    def links(self) -> tuple:
        r = self._readable()
        return r.links if r else ()

    @property
    def status(self) -> Status:
        r = self._readable()
        return r.status if r else Status(StatusCode.UNSET)

    @property
    def kind(self) -> SpanKind:
        r = self._readable()
        return r.kind if r else SpanKind.INTERNAL

    @property
    def parent(self) -> SpanContext | None:
        r = self._readable()
        return r.parent if r else None

    @property
    def start_time(self) -> int | None:
        data = self._data()
        return data["start_time"] if data else None

    @property
    def end_time(self) -> int | None:
        data = self._data()
        return data["end_time"] if data else None

    def __repr__(self) -> str:
        return f'Span(name="{self.name}", context={self.get_span_context()})'


def _attach_methods(native_type: type, methods: type) -> None:
    for attr, value in vars(methods).items():
        if not attr.startswith("__") or attr in ("__repr__", "__call__"):
            setattr(native_type, attr, value)


_attach_methods(_native.Span, _SpanMethods)
Span = _native.Span
trace_api.Span.register(Span)


class _ScopeMethods:
    def __call__(self, func):
        """Use as a decorator: each call of `func` runs in a new span."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                with self._recreate():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._recreate():
                return func(*args, **kwargs)

        return wrapper


_attach_methods(_native.SpanScope, _ScopeMethods)


_error_lock = threading.Lock()
_errors_logged: dict[str, int] = {}
internal_error_count = 0


def _report_internal_error(where: str) -> None:
    """Logs an internal failure once per place (then every 1000th) and counts it."""
    global internal_error_count
    with _error_lock:
        internal_error_count += 1
        n = _errors_logged.get(where, 0) + 1
        _errors_logged[where] = n
    if n == 1 or n % 1000 == 0:
        logger.warning("djtrace: internal error in %s (occurrence %d)", where, n, exc_info=True)


Tracer = _native.Tracer
trace_api.Tracer.register(Tracer)


def _flags(attach: bool, end_on_exit: bool, record_exception: bool, set_status: bool) -> int:
    return (_KEEP_READABLE | (_ATTACH if attach else 0) | (_END_ON_EXIT if end_on_exit else 0)
            | (_RECORD_EXCEPTION if record_exception else 0) | (_SET_STATUS if set_status else 0))


class _PythonPath:
    """How spans start and end when the provider has a sampler or span processors written in
    Python: the same behaviour as the native path, with the Python hooks called."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = weakref.ref(provider)

    def start_span(self, tracer, name, context=None, kind=SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True, *, _attach=False, _end_on_exit=True):
        provider = self._provider()
        flags = _flags(_attach, _end_on_exit, record_exception, set_status_on_exception)
        kind = SpanKind.INTERNAL if kind is None else kind
        try:
            parent = _native.current_span(context)
            if provider is not None and provider._py_sampler is not None:
                span = self._start_sampled(provider, tracer, name, parent, kind, attributes,
                                           links, start_time, flags)
            else:
                span = tracer._start_span_native(name, parent, _otlp_kind(kind), attributes,
                                                 _links(links), start_time, flags)
        except Exception:  # noqa: BLE001
            _report_internal_error("start_span")
            return trace_api.INVALID_SPAN
        # As the official SDK: processors see recording spans only, never a dropped one.
        if provider is not None and provider._py_processors and span.is_recording():
            provider._on_start(span, context)
        return span

    @staticmethod
    def _start_sampled(provider, tracer, name, parent, kind, attributes, links, start_time, flags):
        parent_ctx = (parent.get_span_context() if parent is not None
                      else trace_api.INVALID_SPAN_CONTEXT)
        trace_id = parent_ctx.trace_id if parent_ctx.is_valid else _native.new_trace_id()
        parent_context = trace_api.set_span_in_context(parent) if parent is not None else None
        result = provider._py_sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links,
            parent_ctx.trace_state if parent_ctx.is_valid else None,
        )
        merged = dict(attributes or {})
        if result.decision.is_recording() and result.attributes:
            merged.update(result.attributes)
        state = result.trace_state.to_header() if result.trace_state is not None else None
        return tracer._start_span_decided(
            name, parent, _otlp_kind(kind), merged or None, _links(links), start_time, flags,
            trace_id, result.decision.value, state,
        )

    def start_as_current_span(self, tracer, name, context=None, kind=SpanKind.INTERNAL,
                              attributes=None, links=None, start_time=None,
                              record_exception=True, set_status_on_exception=True,
                              end_on_exit=True):
        return self._current(tracer, name, context, kind, attributes, links, start_time,
                             record_exception, set_status_on_exception, end_on_exit)

    @trace_api._agnosticcontextmanager  # noqa: SLF001 - the API's decorator-capable CM
    def _current(self, tracer, name, context, kind, attributes, links, start_time,
                 record_exception, set_status_on_exception, end_on_exit) -> Iterator[Any]:
        span = self.start_span(tracer, name, context, kind, attributes, links, start_time,
                               record_exception, set_status_on_exception, _attach=True,
                               _end_on_exit=end_on_exit)
        with trace_api.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                                set_status_on_exception=set_status_on_exception) as s:
            yield s

    def end(self, span, end_time=None) -> None:
        provider = self._provider()
        if not span._mark_ended(end_time):
            return
        data = span._data()
        if data is not None and provider is not None:
            readable = ReadableSpan(data)
            for processor in provider._py_processors:
                try:
                    processor.on_end(readable)
                except Exception:  # noqa: BLE001
                    _report_internal_error(f"{type(processor).__name__}.on_end")
        span._submit()


class SpanProcessor:
    """Base class of span processors written in Python (on_start / on_end hooks)."""

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_providers: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


#: How long exit waits for export workers already inside a call into Python (a Python exporter,
#: a log line) once the providers have shut down.
_EXIT_CALLS_TIMEOUT_S = 2.0


def _shutdown_all_at_exit() -> None:
    for provider in list(_providers):
        try:
            provider.shutdown()
        except Exception:  # noqa: BLE001
            _report_internal_error("shutdown at exit")
    # A worker still running (its export outlived the shutdown timeout) must not wait for the GIL
    # while the interpreter finalizes: CPython would end the thread mid-unwind and abort.
    _native.close_python_calls(_EXIT_CALLS_TIMEOUT_S)


atexit.register(_shutdown_all_at_exit)


class TracerProvider(trace_api.TracerProvider):
    """Creates tracers; owns the sampler, resource, span limits and span processors."""

    def __init__(
        self,
        sampler: Sampler | None = None,
        resource: Resource | None = None,
        shutdown_on_exit: bool = True,
        active_span_processor: Any = None,
        id_generator: Any = None,
        span_limits: SpanLimits | None = None,
        redaction: Any = None,
    ) -> None:
        """`redaction` is the "pii" setting (see djtrace.pii): a profile name or a dict; by
        default the `default` profile (or DJTRACE_PII_PROFILE). Every span is redacted by it
        natively before export, whichever processor exports it."""
        self._resource = resource if resource is not None else Resource.create()
        self._sampler = sampler if sampler is not None else sampler_from_env()
        self._span_limits = span_limits or SpanLimits()
        native_sampler = self._sampler._native if self._sampler._is_native() else None
        self._py_sampler = None if native_sampler is not None else self._sampler
        self._core = _native.TracerCore(
            native_sampler if native_sampler is not None else _native.always_on_sampler(),
            self._resource._to_native(),
            self._span_limits._native_tuple(),
        )
        from djtrace import pii

        self._redactor = pii.build_redactor(redaction)
        pii.set_active(self._redactor)
        self._python_path = _PythonPath(self)
        if self._py_sampler is not None:
            self._core.set_python_hooks(self._python_path.start_span,
                                        self._python_path.start_as_current_span, None)
        self._py_processors: list = []
        self._processors: list = []
        self._tracers: dict = {}
        self._lock = threading.Lock()
        self._shutdown = False
        if id_generator is not None:
            logger.warning(
                "djtrace: TracerProvider(id_generator=...) is ignored; ids are drawn natively"
            )
        if active_span_processor is not None:
            self.add_span_processor(active_span_processor)
        if shutdown_on_exit:
            _providers.add(self)

    @property
    def resource(self) -> Resource:
        return self._resource

    @property
    def sampler(self) -> Sampler:
        return self._sampler

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> trace_api.Tracer:
        if not instrumenting_module_name:
            instrumenting_module_name = ""
        key = (instrumenting_module_name, instrumenting_library_version, schema_url,
               tuple(sorted((attributes or {}).items())) if attributes else None)
        tracer = self._tracers.get(key)
        if tracer is None:
            with self._lock:
                tracer = self._tracers.get(key)
                if tracer is None:
                    scope = InstrumentationScope(instrumenting_module_name,
                                                 instrumenting_library_version, schema_url,
                                                 attributes)
                    tracer = Tracer(self._core, scope.name, scope.version or "",
                                    scope.schema_url or "", dict(scope.attributes), scope)
                    self._tracers[key] = tracer
        return tracer

    def add_span_processor(self, span_processor: Any) -> None:
        """Adds a processor: djtrace's own run natively; others get on_start/on_end calls."""
        with self._lock:
            self._processors.append(span_processor)
            native = getattr(span_processor, "_native_processor", None)
            if native is not None:
                processor = native()
                _native.set_processor_redactor(processor, self._redactor)
                self._core.add_processor(
                    processor, bool(getattr(span_processor, "_blocks_on_end", False)))
                return
            self._py_processors.append(span_processor)
            self._core.set_python_hooks(self._python_path.start_span,
                                        self._python_path.start_as_current_span,
                                        self._python_path.end)

    def _on_start(self, span: Span, context: Any) -> None:
        for processor in self._py_processors:
            try:
                processor.on_start(span, parent_context=context)
            except Exception:  # noqa: BLE001
                _report_internal_error(f"{type(processor).__name__}.on_start")

    def exit_flush(self, timeout_millis: int = 30000) -> bool:
        """force_flush for a process about to exit (the end of a management command, a Celery
        process leaving): djtrace's exporters try each batch once, without retries, so that a
        collector that is down does not hold the exit up for the whole export timeout."""
        self._core.set_exiting(True)
        try:
            return self.force_flush(timeout_millis)
        finally:
            self._core.set_exiting(False)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = self._core.force_flush(int(timeout_millis))
        for processor in self._py_processors:
            try:
                ok = bool(processor.force_flush(timeout_millis)) and ok
            except Exception:  # noqa: BLE001
                _report_internal_error(f"{type(processor).__name__}.force_flush")
                ok = False
        return ok

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        timeout = max((getattr(p, "_export_timeout_millis", 30000) for p in self._processors),
                      default=30000)
        self._core.shutdown(int(timeout))
        for processor in self._py_processors:
            try:
                processor.shutdown()
            except Exception:  # noqa: BLE001
                _report_internal_error(f"{type(processor).__name__}.shutdown")

    def _counters(self) -> dict:
        return self._core.counters()


class _NoOpScope:
    """start_as_current_span of a disabled SDK: no span, no context change, no allocation."""

    __slots__ = ()

    def __enter__(self) -> trace_api.Span:
        return trace_api.INVALID_SPAN

    def __exit__(self, *exc_info: Any) -> bool:
        return False

    def __call__(self, func):
        return func


_NOOP_SCOPE = _NoOpScope()


class _DisabledTracer(trace_api.Tracer):
    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace_api.Span:
        return trace_api.INVALID_SPAN

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any):
        return _NOOP_SCOPE


_DISABLED_TRACER = _DisabledTracer()


class DisabledTracerProvider(trace_api.TracerProvider):
    """What OTEL_SDK_DISABLED=true installs: tracers that do nothing, as cheaply as possible."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        return _DISABLED_TRACER

    def add_span_processor(self, span_processor: Any) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


__all__ = [
    "DisabledTracerProvider",
    "Event",
    "InstrumentationScope",
    "ReadableSpan",
    "Span",
    "SpanLimits",
    "SpanProcessor",
    "Tracer",
    "TracerProvider",
    "Decision",
]
