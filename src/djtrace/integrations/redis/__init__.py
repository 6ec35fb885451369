"""redis-py: each command a CLIENT span, each pipeline or transaction one span.

Only commands issued while a recording span is current are traced (the DJTRACE key
`redis_trace_without_parent` lifts that), so a worker's idle polling and heartbeats, and any
Redis traffic outside a request, task or command, cost one context read and produce nothing.
The connections of Celery's internals are never traced: kombu's broker channels and Celery's
Redis result backend are marked when they create their connection pools.

Span name and attributes (semantic conventions for Redis):
    name                     the command ("GET"), or "PIPELINE" / "MULTI", followed by the
                             command when every command of the batch is the same
                             ("PIPELINE SET")
    db.system.name           "redis"
    db.operation.name        as the span name
    db.query.text            the command and a "?" per argument ("SET ? ?"): no key and no value
                             ever leaves the process; batches join their commands with "; "
    db.operation.batch.size  commands in a pipeline or transaction (when 2 or more)
    db.namespace             the database index the connection pool was configured with (a
                             later SELECT is not followed)
    server.address / server.port, or server.address = the socket path for unix sockets
    error.type, db.response.status_code  on failure: the Redis error prefix ("WRONGTYPE") for
                             errors the server returned, the exception's class otherwise

Django's Redis cache backend (django.core.cache.backends.redis) goes through redis-py, so its
commands appear beneath the cache span that is current when they run.

A command of the synchronous client runs natively in the common case (its name a str, the
current span one of djtrace's, djtrace's own tracer): no Python of djtrace's runs for it. The
rest (bytes names, no parent, a provider with Python samplers or processors, pipelines and the
asyncio client) goes through the Python wrappers below, with the same spans.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

from djtrace import _native
from djtrace._version import __version__
from djtrace.integrations import _settings, _suppress
from djtrace.integrations import _tracing as tr

__all__ = ["install", "uninstall", "is_installed", "query_text", "untrace_pool"]

_settings.define("redis_trace_without_parent", False, _settings.parse_bool)

_handle = tr.TracerHandle("djtrace.integrations.redis", __version__)
_SUPPRESSED = _suppress.SUPPRESSED
_current_span = tr.current_span
_POOL_KEY = "_djtrace_redis"  # on a connection pool: its static attributes, or False
_MAX_BATCH_TEXT = 50  # commands listed in a batch's db.query.text
_MAX_CACHED = 4096

_trace_without_parent = False
#: The attributes of clients without one pool (cluster).
_NO_POOL = _native.cache_backend_info(None, {"db.system.name": "redis"}, None, tr.OTLP_CLIENT)
_lock = threading.Lock()
_installed = False
_patched: list = []  # (owner, attribute, original)
_texts: dict = {}


def is_installed() -> bool:
    return _installed


def _command_name(raw: Any) -> str:
    if raw.__class__ is str:
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw).decode("utf-8", "replace")
    return str(raw)


def query_text(name: str, argument_count: int) -> str:
    """The obfuscated text of one command: its name and a "?" per argument."""
    key = (name, argument_count)
    text = _texts.get(key)
    if text is None:
        text = name + " ?" * argument_count if argument_count > 0 else name
        if len(_texts) < _MAX_CACHED:
            _texts[key] = text
    return text


def _pool_attributes(pool: Any) -> Any:
    """The static attributes of a pool's connections, as a CacheBackendInfo (converted once and
    shared by the native wrapper's spans) kept on the pool, or False for the pools of Celery's
    internals."""
    # An attribute, not pool.__dict__: asking for the __dict__ turns the pool's inline
    # attribute values into a dict, which slows every attribute redis-py reads on it.
    info = getattr(pool, _POOL_KEY, None)
    if info is not None:
        return info
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    attrs = {"db.system.name": "redis"}
    path = kwargs.get("path")
    if path:
        attrs["server.address"] = str(path)
    else:
        host = kwargs.get("host")
        if host:
            attrs["server.address"] = str(host)
        port = kwargs.get("port")
        if isinstance(port, int):
            attrs["server.port"] = port
        elif isinstance(port, str) and port.isdigit():
            attrs["server.port"] = int(port)
    db = kwargs.get("db")
    if db is not None:
        attrs["db.namespace"] = str(db)
    info = _native.cache_backend_info(None, attrs, None, tr.OTLP_CLIENT)
    try:
        setattr(pool, _POOL_KEY, info)
    except (AttributeError, TypeError):  # a pool that takes no attributes: computed each time
        pass
    return info


def untrace_pool(pool: Any) -> Any:
    """Marks a connection pool whose commands must never be traced; returns it."""
    try:
        setattr(pool, _POOL_KEY, False)
    except (AttributeError, TypeError):
        pass
    return pool


def _start(client: Any, name: str, text: str, batch_size: int = 0) -> Any:
    """A started span for a command of `client`, or None when it is not to be traced."""
    if _SUPPRESSED.get():
        return None
    parent = _current_span()
    if parent is None:
        if not _trace_without_parent:
            return None
    elif not parent.is_recording():
        return None
    pool = getattr(client, "connection_pool", None)
    info = _pool_attributes(pool) if pool is not None else _NO_POOL
    if info is False:
        return None
    mode = _handle.mode()
    if mode == tr.OFF:
        return None
    if mode == tr.NATIVE:
        span = _handle.start_native(name, parent, tr.OTLP_CLIENT)
    else:
        span = _handle.start_generic(name, None, tr.OTLP_CLIENT)
    if span.is_recording():
        attrs = dict(info.attributes)
        attrs["db.operation.name"] = name
        attrs["db.query.text"] = text
        if batch_size >= 2:
            attrs["db.operation.batch.size"] = batch_size
        span.set_attributes(attrs)
    return span


def _error_attributes(exc: BaseException) -> dict:
    """error.type, and for an error the server returned its prefix ("WRONGTYPE") as
    db.response.status_code and error.type."""
    attrs = {"error.type": type(exc).__qualname__}
    try:
        from redis.exceptions import ResponseError

        if isinstance(exc, ResponseError):
            prefix = str(exc).split(" ", 1)[0]
            if prefix.isupper():
                attrs["db.response.status_code"] = attrs["error.type"] = prefix
    except ImportError:  # pragma: no cover
        pass
    return attrs


def _fail(span: Any, exc: BaseException) -> None:
    if span.is_recording():
        span.set_attributes(_error_attributes(exc))
        span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def _command_span(client: Any, args: tuple) -> Any:
    try:
        if not args:
            return None
        name = _command_name(args[0])
        return _start(client, name, query_text(name, len(args) - 1))
    except Exception:  # noqa: BLE001 - tracing never stops a command
        tr._report_internal_error("redis command")
        return None


def _batch_span(pipeline: Any, _args: tuple = ()) -> Any:
    try:
        stack = pipeline.command_stack
        if not stack:
            return None
        # redis.client.Pipeline.transaction is a flag; the asyncio Pipeline's flag is
        # is_transaction (its `transaction` is a method).
        transaction = getattr(pipeline, "is_transaction", None)
        if transaction is None:
            transaction = getattr(pipeline, "transaction", False)
        transaction = (transaction is True
                       or getattr(pipeline, "explicit_transaction", False) is True)
        prefix = "MULTI" if transaction else "PIPELINE"
        names = []
        texts = []
        for entry in stack:
            args = entry[0] if isinstance(entry, tuple) else getattr(entry, "args", ())
            name = _command_name(args[0]) if args else "?"
            names.append(name)
            if len(texts) < _MAX_BATCH_TEXT:
                texts.append(query_text(name, len(args) - 1))
        first = names[0]
        same = all(n == first for n in names)
        name = f"{prefix} {first}" if same else prefix
        if same and all(t == texts[0] for t in texts):
            text = texts[0]
        else:
            text = "; ".join(texts)
            if len(stack) > _MAX_BATCH_TEXT:
                text += "; ..."
        return _start(pipeline, name, text, len(stack))
    except Exception:  # noqa: BLE001
        tr._report_internal_error("redis pipeline")
        return None


def _traced(span_of: Any) -> Any:
    """A wrapper factory: the method inside the span `span_of(self, args)` (None: untraced)."""

    def wrap(original: Any) -> Any:
        @functools.wraps(original)
        def call(self, *args, **kwargs):
            span = span_of(self, args)
            if span is None:
                return original(self, *args, **kwargs)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                _fail(span, exc)
                raise
            span.end()
            return result

        return call

    return wrap


def _traced_async(span_of: Any) -> Any:
    """The same for coroutine methods (redis.asyncio)."""

    def wrap(original: Any) -> Any:
        @functools.wraps(original)
        async def call(self, *args, **kwargs):
            span = span_of(self, args)
            if span is None:
                return await original(self, *args, **kwargs)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                _fail(span, exc)
                raise
            span.end()
            return result

        return call

    return wrap


_wrap_command_python = _traced(_command_span)


def _native_tracer() -> Any:
    """The integration's tracer when it is djtrace's native one (else None): what the native
    command wrapper starts its spans with."""
    return _handle.tracer if _handle.mode() == tr.NATIVE else None


def _wrap_command(original: Any) -> Any:
    """Redis.execute_command in a span: natively in the common case (see
    native/python/call_bindings.cc, RedisCommand), through the Python wrapper otherwise."""
    fallback = _wrap_command_python(original)
    return _native.redis_command(original, fallback, _SUPPRESSED, trace_api, _native_tracer,
                                 _pool_attributes, _error_attributes, _NO_POOL)


_wrap_execute = _traced(_batch_span)
_wrap_async_command = _traced_async(_command_span)
_wrap_async_execute = _traced_async(_batch_span)


def _wrap_pool_factory(original: Any) -> Any:
    @functools.wraps(original)
    def get_pool(self, *args, **kwargs):
        return untrace_pool(original(self, *args, **kwargs))

    return get_pool


def _patch(owner: Any, attribute: str, wrapper: Any) -> None:
    original = owner.__dict__.get(attribute)
    if original is None or getattr(original, "__djtrace_wrapped__", None) is not None:
        return
    wrapped = wrapper(original)
    if getattr(wrapped, "__djtrace_wrapped__", None) is None:  # a native one has it already
        wrapped.__djtrace_wrapped__ = original
    setattr(owner, attribute, wrapped)
    _patched.append((owner, attribute, original))


# Celery's Redis internals, by module: their pools are marked so that their commands are not
# traced.
_CELERY_INTERNALS = (("kombu.transport.redis", ("Channel", "SentinelChannel")),
                     ("celery.backends.redis", ("RedisBackend", "SentinelBackend")))


def _mark_pools(module_name: str, class_names: tuple) -> None:
    module = sys.modules.get(module_name)
    for name in class_names:
        cls = getattr(module, name, None)
        if cls is not None:
            _patch(cls, "_get_pool", _wrap_pool_factory)


def _patch_celery_internals() -> None:
    """Marks the pools of kombu's Redis channels and Celery's Redis result backends, now for
    the modules already imported and otherwise when they are."""
    from djtrace.integrations._imports import when_imported

    for module_name, class_names in _CELERY_INTERNALS:
        when_imported(module_name,
                      lambda m=module_name, c=class_names: _mark_pools(m, c))


def install_when_imported() -> None:
    """install() once the application imports redis-py (at once if it has). Celery's modules
    are watched first: kombu imports redis-py from inside its own import, when its classes do
    not exist yet."""
    from djtrace.integrations._imports import when_imported

    _patch_celery_internals()
    when_imported("redis", install)


def reload_settings() -> None:
    """Reads this integration's DJTRACE keys again (the Django integration calls it when the
    setting changes)."""
    global _trace_without_parent
    _trace_without_parent = _settings.value("redis_trace_without_parent")


def install() -> bool:
    """Traces redis-py in this process. False when redis-py is not importable."""
    global _installed, _trace_without_parent
    try:
        import redis.client
    except ImportError:
        return False
    with _lock:
        _trace_without_parent = _settings.value("redis_trace_without_parent")
        if _installed:
            return True
        _patch(redis.client.Redis, "execute_command", _wrap_command)
        _patch(redis.client.Pipeline, "execute", _wrap_execute)
        try:
            import redis.asyncio.client as aio
        except ImportError:  # pragma: no cover - redis-py without asyncio support
            aio = None
        if aio is not None:
            _patch(aio.Redis, "execute_command", _wrap_async_command)
            _patch(aio.Pipeline, "execute", _wrap_async_execute)
        try:
            import redis.cluster as cluster
        except ImportError:  # pragma: no cover
            cluster = None
        if cluster is not None:
            _patch(cluster.RedisCluster, "execute_command", _wrap_command)
            _patch(cluster.ClusterPipeline, "execute", _wrap_execute)
        _patch_celery_internals()
        _installed = True
        return True


def uninstall() -> None:
    global _installed
    with _lock:
        while _patched:
            owner, attribute, original = _patched.pop()
            setattr(owner, attribute, original)
        _installed = False
