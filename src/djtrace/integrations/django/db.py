"""Database spans, transaction spans, query source and N+1 detection for Django.

Every query on every connection alias goes through Django's execute wrappers
(`connection.execute_wrappers`): djtrace adds its own to each connection when it connects
(`connection_created`) and to the connections already open at install time. The wrapper is
the native function `djtrace._native.db_execute` bound to a per-connection `DbConnInfo`, so a
traced query costs one crossing into C++, which

- looks the SQL text up in the native SQL cache (obfuscated text, fingerprint and the summary
  used as span name, computed once per distinct text),
- walks the Python frames up to the first frame of application code (outside Django, djtrace,
  site-packages and the standard library; the decision is cached per code object) for
  `code.filepath`, `code.lineno`, `code.function`,
- starts a CLIENT span as a child of the current span, runs the query, and ends the span with
  the rows returned (`db.response.returned_rows`) or affected (`djtrace.db.rows_affected`) when
  the driver knows them, or with the error (ERROR status, `error.type`, an `exception` event
  whose message is the error's first line only: database errors quote the row's values in the
  lines after it),
- adds the execution to the statistics of the local root (request, task, command): query count,
  database time, N+1 groups by (fingerprint, call site), exact duplicates by a native hash of the
  text and parameters (parameters are never exported). When the root ends, it receives the
  attributes `djtrace.db.query_count`, `djtrace.db.duration_ms`, `djtrace.n_plus_one.count`,
  `djtrace.db.duplicate_count` (and `djtrace.db.error_count` when queries failed) and one
  `djtrace.n_plus_one` event per N+1 group, with the SQL, count, total time, call site and the
  ORM relation whose lazy loading issued the queries (`Order.customer`).

Queries that run with no current span (scripts, threads, start-up code) get a root CLIENT span
of their own (setting `db_root_spans`), without N+1 statistics since each is its own root.
Hooks that start a local root give it statistics with `begin_local_root(span)` (one native
call; the Celery consumer does); the Django request and command hooks announce their root in
`djtrace.integrations.django._state.ROOT`, where the first query finds it. A local root the
application started itself gets statistics on its first query.

`transaction.atomic()` blocks get an INTERNAL span `transaction` (outermost block) or
`savepoint` (nested block with a savepoint), made current so that their queries nest under
them, with `djtrace.db.transaction.outcome` = `commit` or `rollback`.

Lazy loads are recognised by wrapping Django's related-object descriptors: the forward
many-to-one / one-to-one descriptor's `get_object`, the reverse one-to-one descriptor, and the
reverse-FK and many-to-many related managers (their querysets carry the relation to the SQL
compiler). While such a fetch runs, the context variable `RELATION` holds "Model.field", which
the native code reads and puts on the span (`djtrace.orm.relation`) and in the statistics.

Settings (keys of `DJTRACE = {...}`, or environment variables `DJTRACE_<KEY>`):

============================  ========  ====================================================
key                           default   meaning
============================  ========  ====================================================
db_spans                      True      A CLIENT span per query (False: no database spans,
                                        no statistics).
db_query_source               True      code.filepath / code.lineno / code.function on
                                        database spans and N+1 findings (and
                                        djtrace.template.name / .lineno for queries a
                                        Django template node made).
db_root_spans                 True      A query with no current span gets a root span.
app_code                      ()        Packages (importable names) or absolute directories
                                        that are the application's code although they lie
                                        where call sites are not looked for (a project
                                        installed into site-packages): their frames are call
                                        sites, their commands are checked for N+1s. A string
                                        is split at commas (DJTRACE_APP_CODE).
db_transaction_spans          True      Spans for atomic() blocks.
n_plus_one_threshold          5         Executions of one (statement, call site) in one root
                                        that make an N+1 (0: detection off).
n_plus_one_min_duration_ms    0         ...whose total time is at least this.
n_plus_one_max_groups         256       Distinct (statement, call site) pairs kept per root.
n_plus_one_warn               None      Log a warning (logger "djtrace.n_plus_one") for each
                                        N+1 found (and each repeated Celery task send, see
                                        djtrace.integrations.celery); None: when
                                        settings.DEBUG is True.
n_plus_one_strict             False     Raise NPlusOneError at the query that completes an
                                        N+1 (for test suites; RepeatedTaskSendError at the
                                        task send that completes a repeated send).
sqlcommenter                  False     Append a sqlcommenter comment (traceparent, route,
                                        controller, framework, db_driver; URL-encoded) to
                                        the SQL sent to the database. The span's
                                        db.query.text never includes it.
db_sql_cache_size             4096      Distinct SQL texts whose obfuscation is cached.
============================  ========  ====================================================

OTEL_SEMCONV_STABILITY_OPT_IN=database/dup also emits the old attribute names (db.statement,
db.operation, db.name, db.sql.table, net.peer.name, net.peer.port).
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from djtrace import _native
from djtrace.config import ConfigError, register_setting_keys

logger = logging.getLogger("djtrace")
n_plus_one_logger = logging.getLogger("djtrace.n_plus_one")

#: "Model.field" while Django loads a related object lazily (read natively by db_execute).
RELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "djtrace_orm_relation", default=None)
#: (route, controller) of the current request, for sqlcommenter.
COMMENT_TAGS: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(
    "djtrace_sqlcommenter_tags", default=None)
#: The innermost active QueryCollector (djtrace.testing helpers).
COLLECTOR: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "djtrace_query_collector", default=None)
#: The application's call site (a native CapturedSite) while Django's async API runs
#: synchronous code for it in a worker thread, whose stack has no frame of the application's.
AWAITED_SITE: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "djtrace_awaited_site", default=None)

SCOPE = "djtrace.django"

# ---------------------------------------------------------------------------------------------
# Settings

DEFAULTS: dict[str, Any] = {
    "db_spans": True,
    "db_query_source": True,
    "db_root_spans": True,
    "db_transaction_spans": True,
    "n_plus_one_threshold": 5,
    "n_plus_one_min_duration_ms": 0,
    "n_plus_one_max_groups": 256,
    "n_plus_one_warn": None,
    "n_plus_one_strict": False,
    "sqlcommenter": False,
    "db_sql_cache_size": 4096,
    "app_code": (),
}
register_setting_keys(*DEFAULTS)

#: Stable id of the system check that reports a bad value of one of the keys above.
CHECK_ID = "djtrace.E020"


def _parse_app_code(name: str, raw: Any) -> tuple[str, ...]:
    from djtrace.integrations._callsite import resolve_app_code

    if isinstance(raw, str):
        entries = [e.strip() for e in raw.split(",") if e.strip()]
    elif isinstance(raw, (list, tuple)) and all(isinstance(e, str) for e in raw):
        entries = [e.strip() for e in raw if e.strip()]
    else:
        raise ConfigError(f"{name} must be a list of package names or absolute directories, "
                          f"got {raw!r}")
    try:
        resolve_app_code(entries)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return tuple(entries)


def _parse(name: str, key: str, raw: Any) -> Any:
    if key == "app_code":
        return _parse_app_code(name, raw)
    default = DEFAULTS[key]
    if isinstance(default, bool) or key == "n_plus_one_warn":
        if key == "n_plus_one_warn" and raw is None:
            return None
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            if key == "n_plus_one_warn" and text in ("", "none", "debug"):
                return None
        raise ConfigError(f"{name} must be True or False, got {raw!r}")
    if key == "n_plus_one_min_duration_ms":
        try:
            value = float(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            value = None
        if value is None or not value >= 0:
            raise ConfigError(f"{name} must be a number of milliseconds >= 0, got {raw!r}")
        return value
    # integers
    minimum = {"n_plus_one_threshold": 0, "n_plus_one_max_groups": 1, "db_sql_cache_size": 0}[key]
    try:
        value = int(str(raw).strip()) if not isinstance(raw, (bool, float)) else None
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    if key == "n_plus_one_threshold" and value == 1:
        raise ConfigError(f"{name} must be 0 (off) or at least 2, got {raw!r}")
    return value


class DbSettings:
    """The resolved database settings (attribute names are the keys above)."""

    def __init__(self) -> None:
        for key, value in DEFAULTS.items():
            setattr(self, key, value)
        self.problems: list[str] = []
        self.debug = False
        self.old_names = False

    @property
    def warn(self) -> bool:
        return self.debug if self.n_plus_one_warn is None else bool(self.n_plus_one_warn)


def load_settings(raw: Any = None, environ: Any = None, debug: bool = False) -> DbSettings:
    """Resolves the keys above from the DJTRACE dict `raw` and the environment. A bad value
    keeps its default and is listed in `.problems` (reported by system check djtrace.E020)."""
    env = os.environ if environ is None else environ
    s = DbSettings()
    s.debug = bool(debug)
    raw = raw if isinstance(raw, dict) else {}
    for key in DEFAULTS:
        sources = []
        if key in raw:
            sources.append((f"DJTRACE[{key!r}]", raw[key]))
        env_name = "DJTRACE_" + key.upper()
        if env.get(env_name, "").strip():
            sources.append((env_name, env[env_name]))
        for name, value in sources:  # the environment, when set, wins
            try:
                setattr(s, key, _parse(name, key, value))
            except ConfigError as exc:
                s.problems.append(str(exc))
    opt_in = {p.strip().lower() for p in env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    s.old_names = "database/dup" in opt_in
    return s


def _django_settings() -> DbSettings:
    from django.conf import settings

    raw = getattr(settings, "DJTRACE", None)
    return load_settings(raw, debug=getattr(settings, "DEBUG", False))


def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    """Django system check: the database keys of DJTRACE have valid values."""
    from django.core import checks

    return [checks.Error(message, obj="DJTRACE", id=CHECK_ID)
            for message in _django_settings().problems]


# ---------------------------------------------------------------------------------------------
# State

_lock = threading.RLock()
_installed = False
_settings: DbSettings | None = None
_generic_tracer: list = [None]  # the tracer when it is not djtrace's (Python fallback path)


class NPlusOneError(AssertionError):
    """Raised in strict mode (n_plus_one_strict) at the query that completes an N+1."""

    def __init__(self, message: str, finding: dict | None = None) -> None:
        super().__init__(message)
        self.finding = finding


def current_settings() -> DbSettings:
    s = _settings
    return s if s is not None else _django_settings()


def describe_finding(f: dict) -> str:
    """One human line for an N+1 finding: relation, count, call site and SQL (or for a repeated
    task send, its `kind` being "repeated_task_send": task name, count and call site)."""
    if f.get("kind") == "repeated_task_send":
        from djtrace.integrations.celery.producer import describe_repeated_send

        return describe_repeated_send(f)
    from djtrace.integrations._callsite import describe

    where = describe(f)
    via = f"lazy loading of {f['relation']}, " if f.get("relation") else ""
    return (f"N+1 queries: {via}{f['count']} executions of the same statement from {where} "
            f"({f['duration_ms']:.1f} ms): {f['sql']}")


def _on_finding(finding: dict) -> None:
    s = _settings
    if s is None:
        return
    if s.warn:
        n_plus_one_logger.warning("djtrace: %s", describe_finding(finding))
    if s.n_plus_one_strict:
        raise NPlusOneError(describe_finding(finding), finding)


def _skip_prefixes() -> list[str]:
    """Directories whose frames are not application code."""
    from djtrace.integrations._callsite import skip_prefixes

    return skip_prefixes()


def _app_prefixes(s: DbSettings) -> list[str]:
    """The directories and files DJTRACE["app_code"] names (validated when the settings were
    read; one that stopped resolving since is left out)."""
    from djtrace.integrations import _callsite

    prefixes: list[str] = []
    for entry in s.app_code:
        try:
            prefixes.extend(_callsite.resolve_app_code([entry]))
        except ValueError:
            pass
    return prefixes


def _resolve_tracer(provider: Any) -> Any:
    """The tracer for database spans from `provider` (None: record nothing)."""
    from opentelemetry import trace as trace_api

    from djtrace.sdk.trace import DisabledTracerProvider
    from djtrace.sdk.trace import TracerProvider as DjtraceProvider

    _generic_tracer[0] = None
    if provider is None or isinstance(provider, trace_api.ProxyTracerProvider):
        import djtrace

        provider = djtrace._provider  # noqa: SLF001 - configured but not global
        if provider is None:
            return None
    if isinstance(provider, DisabledTracerProvider):
        return None
    from djtrace._version import __version__

    tracer = provider.get_tracer(SCOPE, __version__)
    if not isinstance(provider, DjtraceProvider):
        _generic_tracer[0] = tracer
    return tracer


def _framework() -> str:
    """sqlcommenter's framework value."""
    try:
        import django

        return f"django:{django.get_version()}"
    except Exception:  # noqa: BLE001
        return "django"


def _configure_native() -> None:
    from opentelemetry import context as context_api
    from opentelemetry import trace as trace_api

    from djtrace.integrations import _suppress

    global _settings
    s = _settings = _django_settings()
    for problem in s.problems:
        logger.error("djtrace: %s; using the default", problem)
    root_var = None
    try:
        from djtrace.integrations.django import _state

        root_var = _state.ROOT
    except Exception:  # noqa: BLE001 - the request hooks may not be there
        pass
    _native.db_configure(
        enabled=bool(s.db_spans),
        suppress_var=_suppress.SUPPRESSED,
        otel_suppress_key=getattr(context_api, "_SUPPRESS_INSTRUMENTATION_KEY", None),
        relation_var=RELATION,
        comment_var=COMMENT_TAGS,
        collector_var=COLLECTOR,
        site_var=AWAITED_SITE,
        thread_entries=_thread_entries(),
        root_var=root_var,
        trace_module=trace_api,
        resolve_tracer=_resolve_tracer,
        fallback=_fallback_execute,
        on_finding=_on_finding,
        client_kind=trace_api.SpanKind.CLIENT,
        skip_prefixes=_skip_prefixes(),
        n_plus_one_threshold=s.n_plus_one_threshold,
        n_plus_one_min_duration_ms=float(s.n_plus_one_min_duration_ms),
        n_plus_one_max_groups=s.n_plus_one_max_groups,
        n_plus_one=True,  # counts and duplicates even with detection off
        query_source=bool(s.db_query_source),
        root_spans=bool(s.db_root_spans),
        sqlcommenter=bool(s.sqlcommenter),
        framework=_framework(),
        sql_cache_capacity=s.db_sql_cache_size,
        app_prefixes=_app_prefixes(s),
    )
    if s.sqlcommenter:
        _install_sqlcommenter_tags()


def _reinstrument_open_connections() -> None:
    # Connections of this thread get their attributes computed again; those of other threads
    # when they next connect.
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if any(_is_ours(w) for w in connection.execute_wrappers):
            instrument_connection(connection)


def _setting_changed(setting: str = "", **kwargs: Any) -> None:
    if setting in ("DJTRACE", "DEBUG"):
        try:
            with _lock:
                _configure_native()
                _reinstrument_open_connections()
        except Exception:  # noqa: BLE001
            _report("db settings changed")


def refresh() -> None:
    """Reads the settings, the environment and the tracer provider again (tests)."""
    with _lock:
        _configure_native()
        _native.db_forget_tracer()
        _reinstrument_open_connections()


def _report(where: str) -> None:
    from djtrace.sdk.trace import _report_internal_error

    _report_internal_error(where)


# ---------------------------------------------------------------------------------------------
# Connections

def _driver(connection: Any) -> str:
    """The driver and its version ("psycopg:3.2.3"); the same for every connection of a
    vendor in one process, so looked up once per vendor."""
    vendor = connection.vendor
    driver = _drivers.get(vendor)
    if driver is None:
        driver = _drivers[vendor] = _find_driver(vendor)
    return driver


_drivers: dict[str, str] = {}


def _find_driver(vendor: str) -> str:
    try:
        if vendor == "postgresql":
            from django.db.backends.postgresql.psycopg_any import is_psycopg3

            if is_psycopg3:
                import psycopg

                return f"psycopg:{psycopg.__version__}"
            import psycopg2

            return f"psycopg2:{psycopg2.__version__.split()[0]}"
        if vendor == "sqlite":
            import sqlite3

            return f"sqlite3:{sqlite3.sqlite_version}"
        if vendor == "mysql":
            import MySQLdb

            return f"mysqlclient:{'.'.join(map(str, MySQLdb.version_info[:3]))}"
    except Exception:  # noqa: BLE001
        pass
    return vendor


def _system_name(connection: Any) -> str:
    vendor = connection.vendor
    if vendor == "mysql":
        try:
            # mysql_is_mariadb reads the server version; at connection_created it is connected.
            if connection.connection is not None and connection.mysql_is_mariadb:
                return "mariadb"
        except Exception:  # noqa: BLE001
            pass
        return "mysql"
    if vendor == "oracle":
        return "oracle.db"
    if vendor == "microsoft":
        return "microsoft.sql_server"
    return vendor


def _connection_entry(connection: Any) -> tuple:
    """(DbConnInfo, execute wrapper) of a Django connection."""
    sd = connection.settings_dict
    name = sd.get("NAME")
    host = sd.get("HOST") or None
    port = sd.get("PORT") or None
    vendor = connection.vendor
    if vendor == "sqlite":
        host = port = None
    elif host is not None and str(host).startswith("/"):
        host = None  # a Unix socket directory, not a server address
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = None
    if vendor == "postgresql" and host is not None and port is None:
        port = 5432
    elif vendor == "mysql" and host is not None and port is None:
        port = 3306
    settings = _settings or current_settings()
    args = (vendor, _system_name(connection), str(name) if name else None,
            str(host) if host else None, port, connection.alias, _driver(connection),
            settings.old_names)
    # The same object for every connection with these settings: Django opens a new connection
    # per request unless CONN_MAX_AGE says otherwise, and the object keeps what its spans
    # share (each statement's attributes, built on its first execution). Its execute wrapper
    # is kept with it, as instrument_connection runs at every new connection.
    entry = _conn_infos.get(args)
    if entry is None:
        if len(_conn_infos) >= 64:
            _conn_infos.clear()
        info = _native.DbConnInfo(*args)
        entry = _conn_infos[args] = (info, functools.partial(_native.db_execute, info))
    return entry


_conn_infos: dict = {}  # DbConnInfo's arguments -> (DbConnInfo, execute wrapper)


def connection_info(connection: Any) -> Any:
    """The native DbConnInfo of a Django connection (its attributes for every span)."""
    return _connection_entry(connection)[0]


def _is_ours(wrapper: Any) -> bool:
    return isinstance(wrapper, functools.partial) and wrapper.func is _native.db_execute


def instrument_connection(connection: Any) -> None:
    """Adds (or refreshes) djtrace's execute wrapper on one connection."""
    try:
        wrapper = _connection_entry(connection)[1]
    except Exception:  # noqa: BLE001
        _report("db connection info")
        return
    wrappers = connection.execute_wrappers
    for i, existing in enumerate(wrappers):
        if _is_ours(existing):
            wrappers[i] = wrapper  # settings_dict may have changed (test databases)
            return
    # First in the list: the outermost wrapper, whose span covers the others.
    wrappers.insert(0, wrapper)


def uninstrument_connection(connection: Any) -> None:
    connection.execute_wrappers[:] = [w for w in connection.execute_wrappers if not _is_ours(w)]


def _on_connection_created(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    if connection is not None:
        instrument_connection(connection)


# ---------------------------------------------------------------------------------------------
# The Python path, for a tracer provider that is not djtrace's

def _fallback_execute(info: Any, executor: Any, sql: Any, params: Any, many: bool,
                      context: Any) -> Any:
    from djtrace.integrations import _suppress

    tracer = _generic_tracer[0]
    if tracer is None or _suppress.suppressed():
        return executor(sql, params, many, context)
    try:
        from opentelemetry.trace import SpanKind, StatusCode

        attrs = info.attributes()
        name = info.system_name
        if isinstance(sql, str):
            o = _native.db_obfuscate(sql, info.dialect)
            attrs["db.query.text"] = o["text"]
            if o["operation"]:
                attrs["db.operation.name"] = o["operation"]
            if o["table"]:
                attrs["db.collection.name"] = o["table"]
            name = o["summary"] or name
        site = _native.db_call_site()
        if site is not None:
            attrs["code.filepath"], attrs["code.lineno"], attrs["code.function"] = site
        relation = RELATION.get()
        if relation:
            attrs["djtrace.orm.relation"] = relation
        if many and isinstance(params, (list, tuple)):
            attrs["db.operation.batch.size"] = len(params)
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
    except Exception:  # noqa: BLE001
        _report("db fallback span start")
        return executor(sql, params, many, context)
    try:
        result = executor(sql, params, many, context)
    except BaseException as exc:
        try:
            type_name = _type_name(type(exc))
            message = _first_line(exc)
            span.set_attribute("error.type", type_name)
            span.add_event("exception", {"exception.type": type_name,
                                         "exception.message": message})
            span.set_status(StatusCode.ERROR, message or type_name)
            span.end()
        except Exception:  # noqa: BLE001
            _report("db fallback span end")
        raise
    try:
        rowcount = getattr(context.get("cursor"), "rowcount", -1)
        if isinstance(rowcount, int) and rowcount >= 0:
            span.set_attribute("db.response.returned_rows", rowcount)
        span.end()
    except Exception:  # noqa: BLE001
        _report("db fallback span end")
    return result


# ---------------------------------------------------------------------------------------------
# Transactions

_TX_STACK = "_djtrace_tx_spans"


def _tx_tracer() -> Any:
    from opentelemetry import trace as trace_api

    return _resolve_tracer(trace_api.get_tracer_provider())


def _install_transactions() -> None:
    from django.db import transaction

    Atomic = transaction.Atomic
    if getattr(Atomic.__enter__, "_djtrace", False):
        return
    original_enter = Atomic.__enter__
    original_exit = Atomic.__exit__

    def __enter__(self: Any) -> Any:
        scope = None
        try:
            scope = _tx_start(self)
        except Exception:  # noqa: BLE001
            _report("db transaction start")
        try:
            result = original_enter(self)
        except BaseException as exc:
            if scope is not None:
                _tx_finish(scope, "rollback", exc)
            raise
        if scope is not False:
            try:
                connection = transaction.get_connection(self.using)
                stack = connection.__dict__.setdefault(_TX_STACK, [])
                stack.append(scope)
            except Exception:  # noqa: BLE001
                _report("db transaction start")
        return result

    def __exit__(self: Any, exc_type: Any, exc_value: Any, tb: Any) -> Any:
        scope = None
        rollback = exc_type is not None
        try:
            connection = transaction.get_connection(self.using)
            stack = connection.__dict__.get(_TX_STACK)
            if stack:
                scope = stack.pop()
                if scope is not None:
                    rollback = (rollback or connection.needs_rollback
                                or connection.closed_in_transaction)
        except Exception:  # noqa: BLE001
            _report("db transaction end")
        if scope is None:
            return original_exit(self, exc_type, exc_value, tb)
        try:
            result = original_exit(self, exc_type, exc_value, tb)
        except BaseException as exc:
            _tx_finish(scope, "rollback", exc)
            raise
        _tx_finish(scope, "rollback" if rollback else "commit", exc_value)
        return result

    __enter__._djtrace = True  # type: ignore[attr-defined]
    __exit__._djtrace = True  # type: ignore[attr-defined]
    __enter__.__wrapped__ = original_enter  # type: ignore[attr-defined]
    __exit__.__wrapped__ = original_exit  # type: ignore[attr-defined]
    Atomic.__enter__ = __enter__
    Atomic.__exit__ = __exit__


def _tx_start(atomic: Any) -> Any:
    """The span scope for an atomic block, None when the block gets no span (recorded on the
    stack so that __exit__ pops in step), or False when nothing is to be recorded at all."""
    from django.db import transaction

    from djtrace.integrations import _suppress

    s = _settings
    if s is None or not s.db_spans or not s.db_transaction_spans or _suppress.suppressed():
        return None
    if getattr(atomic, "_from_testcase", False):
        return None  # TestCase's own per-class and per-test blocks
    connection = transaction.get_connection(atomic.using)
    # Blocks that only TestCase opened do not count: the application's outermost block is a
    # transaction in the test as in production.
    nested = connection.in_atomic_block and not all(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)
    if nested and (not atomic.savepoint or connection.needs_rollback):
        return None  # no savepoint: the block is part of the enclosing one
    tracer = _tx_tracer()
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    info = None
    for wrapper in connection.execute_wrappers:
        if _is_ours(wrapper):
            info = wrapper.args[0]
            break
    attrs = info.attributes() if info is not None else {"db.system.name": connection.vendor}
    for key in ("db.statement", "db.name", "net.peer.name", "net.peer.port"):
        attrs.pop(key, None)
    attrs["djtrace.db.transaction.savepoint"] = nested
    if atomic.durable:
        attrs["djtrace.db.transaction.durable"] = True
    if s.db_query_source:
        site = _native.db_call_site()
        if site is not None:
            attrs["code.filepath"], attrs["code.lineno"], attrs["code.function"] = site
    # Exceptions are recorded by _tx_finish: database errors quote the statement and its
    # values in their later lines, which must not reach the span.
    scope = tracer.start_as_current_span(
        "savepoint" if nested else "transaction", kind=SpanKind.INTERNAL, attributes=attrs,
        record_exception=False, set_status_on_exception=False)
    span = scope.__enter__()
    return (scope, span)


def _tx_finish(entry: Any, outcome: str, exc: BaseException | None) -> None:
    if not entry:
        return
    scope, span = entry
    try:
        span.set_attribute("djtrace.db.transaction.outcome", outcome)
        if exc is not None and isinstance(exc, Exception):
            from opentelemetry.trace import StatusCode

            type_name = _type_name(type(exc))
            message = _first_line(exc)
            span.set_attribute("error.type", type_name)
            span.add_event("exception", {"exception.type": type_name,
                                         "exception.message": message,
                                         "exception.escaped": "True"})
            span.set_status(StatusCode.ERROR, message or type_name)
        if exc is not None:
            scope.__exit__(type(exc), exc, exc.__traceback__)
        else:
            scope.__exit__(None, None, None)
    except Exception:  # noqa: BLE001
        _report("db transaction end")


def _type_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"


def _first_line(exc: BaseException) -> str:
    """The first line of the message: database errors quote values in the lines after it
    (PostgreSQL's DETAIL and LINE)."""
    try:
        return str(exc).split("\n", 1)[0].rstrip()
    except Exception:  # noqa: BLE001
        return ""



# ---------------------------------------------------------------------------------------------
# ORM relations (lazy loads)

def _relation_of_field(field: Any) -> str:
    return f"{field.model.__name__}.{field.name}"


def _relation_of_rel(rel: Any) -> str:
    return f"{rel.model.__name__}.{rel.get_accessor_name()}"


# Django modules whose async API (QuerySet.aget, `async for` over a queryset, Model.asave,
# related managers' acreate, the async cache, session and authentication methods) hands the
# synchronous code to a worker thread with asgiref's sync_to_async, looked up as a global of
# the module at each call.
_ASYNC_API_MODULES = (
    "django.db.models.query", "django.db.models.base",
    "django.db.models.fields.related_descriptors", "django.contrib.contenttypes.fields",
    "django.core.cache.backends.base", "django.contrib.sessions.backends.base",
    "django.contrib.sessions.backends.db", "django.contrib.auth.backends",
)


def _with_awaited_site(real: Any) -> Any:
    """asgiref's sync_to_async, remembering the application's call site on the way: the
    coroutine that awaits Django's async API is on this thread's stack only now. Its work
    then runs in a worker thread, under a copy of this context, where queries, cache reads
    and task sends whose own stack has no frame of the application's take that site."""

    def sync_to_async(func: Any = None, *args: Any, **kwargs: Any) -> Any:
        converted = real(func, *args, **kwargs)
        if func is None:
            return converted  # used as a decorator factory
        try:
            site = _native.capture_call_site()
        except Exception:  # noqa: BLE001
            _report("db awaited call site")
            site = None
        if site is None:
            return converted

        async def with_site(*call_args: Any, **call_kwargs: Any) -> Any:
            token = AWAITED_SITE.set(site)
            try:
                return await converted(*call_args, **call_kwargs)
            finally:
                try:
                    AWAITED_SITE.reset(token)
                except ValueError:  # finished in another context
                    pass

        return with_site

    sync_to_async._djtrace_real = real  # type: ignore[attr-defined]
    return sync_to_async


def _thread_entries() -> list:
    """The code a worker thread enters to run sync_to_async's function (asgiref's
    SyncToAsync.thread_handler): a call-site walk that reaches it has left the work's own
    frames, and takes the awaited call site when there is one."""
    try:
        from asgiref.sync import SyncToAsync

        return [SyncToAsync.thread_handler.__code__]
    except Exception:  # noqa: BLE001 - another asgiref: no entry known, the walk goes on
        return []


def _install_awaited_sites() -> None:
    import importlib

    for name in _ASYNC_API_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an app that is not installed (its models refuse)
            continue
        real = getattr(module, "sync_to_async", None)
        if real is not None and not hasattr(real, "_djtrace_real"):
            module.sync_to_async = _with_awaited_site(real)


def _install_relations() -> None:
    from django.db.models.fields import related_descriptors as rd
    from django.db.models.sql import compiler as sql_compiler
    from django.db.models.sql.query import Query

    if getattr(rd, "_djtrace_installed", False):
        return
    relation_var = RELATION

    # Forward many-to-one and one-to-one (order.customer) and reverse one-to-one
    # (customer.profile): the lazy load of one related object, the classic N+1, runs with its
    # relation in RELATION. Native: an N+1 loop passes here once per row.
    fwd = rd.ForwardManyToOneDescriptor
    fwd.get_object = _native.relation_descriptor_method(
        fwd.get_object, relation_var, lambda d: _relation_of_field(d.field), False)
    rev1 = rd.ReverseOneToOneDescriptor
    rev1.__get__ = _native.relation_descriptor_method(
        rev1.__get__, relation_var, lambda d: _relation_of_rel(d.related), True)

    # Reverse foreign keys and many-to-many: order.items.all(). The manager builds a lazy
    # queryset, so the relation travels on its Query (copied by every clone) to the compiler.
    Query._djtrace_relation = None

    def tag_manager(cls: type, relation: str) -> type:
        original_apply = cls._apply_rel_filters

        def _apply_rel_filters(self: Any, queryset: Any) -> Any:
            qs = original_apply(self, queryset)
            try:
                qs.query._djtrace_relation = relation
            except Exception:  # noqa: BLE001
                pass
            return qs

        cls._apply_rel_filters = _apply_rel_filters
        return cls

    original_reverse_factory = rd.create_reverse_many_to_one_manager
    original_m2m_factory = rd.create_forward_many_to_many_manager

    def create_reverse_many_to_one_manager(superclass: Any, rel: Any) -> Any:
        cls = original_reverse_factory(superclass, rel)
        try:
            tag_manager(cls, _relation_of_rel(rel))
        except Exception:  # noqa: BLE001
            _report("db relation manager")
        return cls

    def create_forward_many_to_many_manager(superclass: Any, rel: Any, reverse: Any) -> Any:
        cls = original_m2m_factory(superclass, rel, reverse)
        try:
            name = _relation_of_rel(rel) if reverse else _relation_of_field(rel.field)
            tag_manager(cls, name)
        except Exception:  # noqa: BLE001
            _report("db relation manager")
        return cls

    rd.create_reverse_many_to_one_manager = create_reverse_many_to_one_manager
    rd.create_forward_many_to_many_manager = create_forward_many_to_many_manager

    # Every query passes through execute_sql: the wrapper that moves the query's relation into
    # RELATION (for the query's span) is native.
    compiler_cls = sql_compiler.SQLCompiler
    original_execute_sql = compiler_cls.execute_sql
    compiler_cls.execute_sql = _native.relation_execute_sql(original_execute_sql, relation_var)
    compiler_cls._djtrace_execute_sql = original_execute_sql
    rd._djtrace_installed = True


# ---------------------------------------------------------------------------------------------
# sqlcommenter: the route and controller of the current request

def _install_sqlcommenter_tags() -> None:
    from django.core.handlers import base
    from django.core.signals import request_finished

    handler = base.BaseHandler
    if getattr(handler.resolve_request, "_djtrace", False):
        return
    original = handler.resolve_request

    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        try:
            if _settings is not None and _settings.sqlcommenter:
                route = getattr(match, "route", None) or ""
                controller = getattr(match, "view_name", None) or getattr(
                    match, "_func_path", "") or ""
                COMMENT_TAGS.set((str(route), str(controller)))
        except Exception:  # noqa: BLE001
            _report("sqlcommenter tags")
        return match

    resolve_request._djtrace = True  # type: ignore[attr-defined]
    resolve_request.__wrapped__ = original  # type: ignore[attr-defined]
    handler.resolve_request = resolve_request
    request_finished.connect(_clear_comment_tags, dispatch_uid="djtrace.db.sqlcommenter")


def _clear_comment_tags(**kwargs: Any) -> None:
    COMMENT_TAGS.set(None)


# ---------------------------------------------------------------------------------------------
# Installation

def install() -> None:
    """Instruments every connection (present and future), atomic blocks and the ORM's
    related-object loading. Idempotent; called by the Django app's ready()."""
    global _installed
    with _lock:
        if _installed:
            return
        from django.core import checks
        from django.core.signals import setting_changed
        from django.db import connections
        from django.db.backends.signals import connection_created

        _configure_native()
        atexit.register(_native_shutdown)
        checks.register(check_settings, "djtrace")
        setting_changed.connect(_setting_changed, dispatch_uid="djtrace.db.settings")
        connection_created.connect(_on_connection_created, dispatch_uid="djtrace.db.connections")
        for connection in connections.all(initialized_only=True):
            if connection.connection is not None:
                instrument_connection(connection)
        for part, fn in (("transactions", _install_transactions),
                         ("relations", _install_relations),
                         ("awaited call sites", _install_awaited_sites)):
            try:
                fn()
            except Exception:  # noqa: BLE001
                _report(f"db install {part}")
        _installed = True


def _native_shutdown() -> None:
    _native.db_shutdown()


def uninstall() -> None:
    """Stops tracing queries (the wrappers stay, doing nothing; tests and diagnostics)."""
    with _lock:
        _native.db_disable()


# ---------------------------------------------------------------------------------------------
# Local roots and their statistics

def begin_local_root(span: Any, findings: bool = True) -> bool:
    """Gives `span`, a root (request, task, command) that just started, fresh query
    statistics: its queries are counted and checked for N+1s, and the results land on it when
    it ends. One native call; False when the span does not record. Hooks that start roots call
    it (the Celery consumer looks it up here); roots without it get statistics on their first
    query, which spans started before that query cannot share. A span below another root (a
    task run eagerly) stops counting in that root's: it and the spans started under it count
    in its own. With `findings` False the root only counts: no N+1, repeated cache get or
    repeated task send is flagged, logged or raised (for work that is not the application's,
    such as Django's migrate)."""
    return _native.attach_query_stats(span, findings)


# ---------------------------------------------------------------------------------------------
# Reading the statistics

def query_stats(span: Any = None) -> dict | None:
    """The query statistics of the local root of `span` (the current span when None):
    query_count, duration_ms, error_count, duplicate_count, n_plus_one_count, findings..."""
    return _native.query_stats(span)


@contextmanager
def collect_queries() -> Iterator[Any]:
    """Collects the queries run within the block (whatever root they belong to) into a native
    QueryCollector: query_count, duplicate_count, duration_ms, queries(), findings() (N+1s
    found in any root during the block; queries without a root are grouped together)."""
    collector = _native.QueryCollector(COLLECTOR.get())
    token = COLLECTOR.set(collector)
    _native.db_collectors_adjust(1)
    try:
        yield collector
    finally:
        COLLECTOR.reset(token)
        _native.db_collectors_adjust(-1)


__all__ = [
    "CHECK_ID",
    "begin_local_root",
    "COMMENT_TAGS",
    "DEFAULTS",
    "NPlusOneError",
    "RELATION",
    "collect_queries",
    "connection_info",
    "describe_finding",
    "install",
    "instrument_connection",
    "load_settings",
    "query_stats",
    "refresh",
]
