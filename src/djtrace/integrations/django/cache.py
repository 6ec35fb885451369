"""One span per cache call: `cache.get`, `cache.set_many`, ...

Each backend class's cache methods are wrapped when django.core.cache.caches first creates an
instance of it, so every backend (locmem, redis, memcached, database, file, third-party
subclasses of BaseCache) is covered; the instances the handler creates carry their alias and
attributes, shared by all the instances of that class, alias and server. Instances made
outside the handler are not traced. Nothing else is built per instance: under ASGI, Django
makes each request its own backends. Attributes:

  djtrace.cache.alias, djtrace.cache.backend    the CACHES alias and the backend class path
  db.system.name                                redis / memcached where the backend says so
  server.address, server.port                   the first server of LOCATION, when remote
  djtrace.cache.key_count                       keys a get_many / set_many / delete_many touches
  cache.hit                                     get, has_key, get_or_set: whether it was found
  djtrace.cache.hits, djtrace.cache.misses      get_many
  djtrace.cache.key / djtrace.cache.keys        only with DJTRACE["cache_keys"], redacted

Calls a backend makes to itself (BaseCache.get_many calling get, get_or_set calling get and
add) are part of the outer call's span, not spans of their own. The async methods (aget, ...)
of BaseCache run the sync ones in a thread and so are traced through them.

Reads of the same key within one request or command are counted natively, in the local root's
statistics (native/analysis/query_stats.h); keys read at least DJTRACE["cache_repeat_threshold"]
times get a `djtrace.cache.repeated_get` event on the root span, with the key's stable hash,
the alias, read and hit counts and the call site of the first read (and the redacted key with
DJTRACE["cache_keys"]).
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations import _tracing as tr
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.integrations.redaction import redact_text
from djtrace.sdk.trace import _report_internal_error

SUPPRESSED = _suppress.SUPPRESSED
REQUEST = _state.REQUEST

METHODS = ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr", "decr",
           "touch", "get_or_set", "has_key", "clear")
_MANY = frozenset(("get_many", "set_many", "delete_many"))
_MAX_EXPORTED_KEYS = 20
_OTLP_KIND = {_state.KIND_INTERNAL: tr.OTLP_INTERNAL, _state.KIND_CLIENT: tr.OTLP_CLIENT}


class _Call:
    """The outermost cache call in progress; nested calls report their hit here."""

    __slots__ = ("hit",)

    def __init__(self) -> None:
        self.hit: bool | None = None


class _InCall(threading.local):
    """The outermost cache call in progress on this thread (greenlet, under gevent). A
    backend calls itself synchronously, on the thread of the outer call, so a thread-local is
    enough, at a fraction of a context variable's set and reset."""

    call: _Call | None = None


_IN_CALL = _InCall()
#: The instance attribute that makes a backend traced (its CacheBackendInfo).
_INFO_ATTR = "_djtrace_cache"
#: Backend classes wrapped so far.
_classes: set[type] = set()
_classes_lock = threading.Lock()
#: CacheBackendInfo by (class, alias, first server).
_infos: dict[tuple, Any] = {}
_MAX_INFOS = 256
#: What the native wrapper puts in _IN_CALL.call: its operations read no nested hit, so one
#: shared record does (nested calls only need to see that a call is in progress).
_NATIVE_CALL = _Call()


def _system(backend: Any) -> tuple[str | None, bool]:
    """(db.system.name, remote) for a backend instance, from its classes' modules and names."""
    for cls in type(backend).__mro__:
        module = cls.__module__.lower()
        name = cls.__name__.lower()
        if "redis" in module or "redis" in name:
            return "redis", True
        if "memcached" in module or name in ("pymemcachecache", "pylibmccache",
                                              "memcachedcache", "basememcachedcache"):
            return "memcached", True
        if name == "databasecache":
            return None, True
    return None, False


def _server(backend: Any) -> tuple[str | None, int | None]:
    servers = getattr(backend, "_servers", None)
    if not servers:
        return None, None
    first = str(servers[0])
    if "://" in first:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(first)
            return parts.hostname, parts.port
        except ValueError:
            return None, None
    if first.startswith(("unix:", "/")):
        return first, None
    host, sep, port = first.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return first, None


def _key_count(op: str, args: tuple, kwargs: dict) -> int:
    if op in _MANY:
        value = args[0] if args else kwargs.get("data" if op == "set_many" else "keys", ())
        try:
            return len(value)
        except TypeError:
            return 0
    return 0 if op == "clear" else 1


def _keys_of(op: str, args: tuple, kwargs: dict) -> list:
    if op == "clear":
        return []
    if op in _MANY:
        value = args[0] if args else kwargs.get("data" if op == "set_many" else "keys", ())
        return list(value)[:_MAX_EXPORTED_KEYS]
    key = args[0] if args else kwargs.get("key")
    return [] if key is None else [key]


def _count_get(alias: str, args: tuple, kwargs: dict, hit: bool, export_key: bool) -> None:
    """Counts a get in the local root's native statistics (repeated reads of one key)."""
    key = args[0] if args else kwargs.get("key")
    version = args[2] if len(args) > 2 else kwargs.get("version")
    try:
        key_text = redact_text(str(key)) if export_key else None
        _native.record_cache_get(alias, key, version, hit, key_text)
    except Exception:  # noqa: BLE001
        _report_internal_error("django cache repeated gets")


def _configure_repeats(cfg: Any) -> None:
    _native.cache_repeat_configure(cfg.cache_repeat_threshold)


def _record_result(span: Any, op: str, result: Any, record: _Call, attrs: dict) -> None:
    """What the result of a has_key, get_or_set or get_many says (get is done inline)."""
    if op == "has_key":
        span.set_attribute("cache.hit", bool(result))
    elif op == "get_or_set":
        if record.hit is not None:
            span.set_attribute("cache.hit", record.hit)
    elif op == "get_many":
        hits = len(result)
        span.set_attribute("djtrace.cache.hits", hits)
        span.set_attribute("djtrace.cache.misses", max(attrs["djtrace.cache.key_count"] - hits, 0))


def _wrap(function: Any, op: str) -> Any:
    """The class-level wrapper of one backend method: `function(self, ...)` in a span for the
    instances that carry a CacheBackendInfo, untraced for the others."""
    name = f"cache.{op}"
    is_get = op == "get"
    is_many = op in _MANY
    reads_result = op in ("has_key", "get_or_set", "get_many")
    in_call = _IN_CALL
    start_current_span = _native.start_current_span

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        info = getattr(self, _INFO_ATTR, None)
        if info is None:  # not made by Django's cache handler
            return function(self, *args, **kwargs)
        outer = in_call.call
        if outer is not None:  # the backend calling itself: part of the outer span
            result = function(self, *args, **kwargs)
            if is_get and outer.hit is None:
                default = args[1] if len(args) > 1 else kwargs.get("default")
                outer.hit = result is not default
            return result
        rs = REQUEST.get()
        if (rs is not None and not rs.recording) or SUPPRESSED.get():
            return function(self, *args, **kwargs)  # a request sampled out, or suppressed
        cfg = dj_settings.get()
        if not cfg.cache_spans:
            return function(self, *args, **kwargs)
        attrs = info.attributes
        if is_many or cfg.cache_keys:
            attrs = dict(attrs)
            if is_many:
                attrs["djtrace.cache.key_count"] = _key_count(op, args, kwargs)
            if cfg.cache_keys:
                try:
                    keys = [redact_text(str(k)) for k in _keys_of(op, args, kwargs)]
                    if is_many:
                        attrs["djtrace.cache.keys"] = keys
                    elif keys:
                        attrs["djtrace.cache.key"] = keys[0]
                except Exception:  # noqa: BLE001
                    _report_internal_error("django cache keys")
        tracer = _state.tracer()
        record = in_call.call = _Call()
        try:
            # One native call starts the span and makes it current (its __exit__ ends it).
            span = scope = start_current_span(tracer, name, info.kind, attrs)
            if span is None:  # a tracer that is not djtrace's: through the API
                scope = tracer.start_as_current_span(name, None, info.api_kind, attrs)
                span = scope.__enter__()
            try:
                result = function(self, *args, **kwargs)
            except BaseException as exc:
                scope.__exit__(type(exc), exc, exc.__traceback__)
                raise
            try:
                if is_get:
                    default = args[1] if len(args) > 1 else kwargs.get("default")
                    hit = result is not default
                    span.set_attribute("cache.hit", hit)
                elif reads_result:
                    _record_result(span, op, result, record, attrs)
            finally:
                scope.__exit__(None, None, None)
            if is_get and cfg.cache_repeat_threshold:
                # Counted once the cache span is closed: the current span is then the one
                # that made the call, and a local root the application started gets its
                # statistics from it.
                _count_get(info.alias, args, kwargs, hit, cfg.cache_keys)
            return result
        finally:
            in_call.call = None

    call.__wrapped__ = function
    # The common case (a single-key operation, no exported keys, djtrace's tracer) runs
    # natively; `call` stays the wrapper for everything else.
    return _native.cache_call(
        function, call, name, in_call, _NATIVE_CALL, dj_settings, SUPPRESSED, _state,
        _state.tracer, _native.record_cache_get, is_get, not is_many and not reads_result)


def _wrappable(raw: Any) -> bool:
    """Whether a class attribute is a plain method (a function, or a callable that binds like
    one): static and class methods, properties and data are left alone."""
    if isinstance(raw, (staticmethod, classmethod, property, type)) or not callable(raw):
        return False
    return hasattr(type(raw), "__get__")


def _instrument_class(cls: type) -> None:
    """Wraps the cache methods of a backend class (once); instances stay untraced until
    `instrument` gives them their info."""
    if cls in _classes:
        return
    with _classes_lock:  # two threads making the first backend of a class wrap it once
        if cls in _classes:
            return
        for op in METHODS:
            try:
                raw = inspect.getattr_static(cls, op)
            except AttributeError:
                continue
            if _native.is_cache_call(raw) or not _wrappable(raw):
                continue
            setattr(cls, op, _wrap(raw, op))
        if _INFO_ATTR not in cls.__dict__:
            setattr(cls, _INFO_ATTR, None)  # untraced unless the instance says otherwise
        _classes.add(cls)


def _info(backend: Any, alias: str) -> Any:
    """The CacheBackendInfo of a backend: one per class, alias and first server."""
    cls = type(backend)
    servers = getattr(backend, "_servers", None)
    first = str(servers[0]) if servers else None
    key = (cls, alias, first)
    info = _infos.get(key)
    if info is not None:
        return info
    system, remote = _system(backend)
    static: dict[str, Any] = {
        "djtrace.cache.alias": alias,
        "djtrace.cache.backend": f"{cls.__module__}.{cls.__qualname__}",
    }
    if system:
        static["db.system.name"] = system
    if remote:
        host, port = _server(backend)
        if host:
            static["server.address"] = host
        if port:
            static["server.port"] = port
    kind = _state.KIND_CLIENT if remote else _state.KIND_INTERNAL
    info = _native.cache_backend_info(alias, static, kind, _OTLP_KIND[kind])
    if len(_infos) >= _MAX_INFOS:  # settings overridden again and again (tests): start over
        _infos.clear()
    _infos[key] = info
    return info


def instrument(backend: Any, alias: str) -> Any:
    """Traces one backend instance: wraps its class's cache methods (once per class) and
    gives the instance its alias and attributes, the only thing stored per instance."""
    if getattr(backend, _INFO_ATTR, None) is not None:
        return backend
    _instrument_class(type(backend))
    setattr(backend, _INFO_ATTR, _info(backend, alias))
    return backend


_originals: dict[str, Any] = {}


def install() -> None:
    """Wraps every cache backend django.core.cache.caches creates. Idempotent."""
    if _originals:
        return
    from django.core import cache as cache_module

    dj_settings.on_change(_configure_repeats)
    _configure_repeats(dj_settings.get())

    handler_cls = cache_module.CacheHandler
    orig = handler_cls.create_connection
    _originals["create_connection"] = orig

    def create_connection(self, alias):
        backend = orig(self, alias)
        try:
            instrument(backend, alias)
        except Exception:  # noqa: BLE001
            _report_internal_error("django cache instrument")
        return backend

    create_connection.__wrapped__ = orig
    handler_cls.create_connection = create_connection
    # Backends created before install (a cache touched during start-up) get wrapped too.
    try:
        for alias in cache_module.caches.settings:
            existing = getattr(cache_module.caches._connections, alias, None)
            if existing is not None:
                instrument(existing, alias)
    except Exception:  # noqa: BLE001
        _report_internal_error("django cache instrument existing")
