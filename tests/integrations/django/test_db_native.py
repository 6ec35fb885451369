"""The native execute wrapper called directly: it calls the executor exactly once, passes
results and exceptions through untouched, and keeps no reference it should not."""

from __future__ import annotations

import functools
import gc
import sys

import pytest
from _dbhelpers import db_spans
from opentelemetry import trace

from djtrace import _native
from djtrace.integrations import _suppress

pytestmark = pytest.mark.django_db


class FakeCursor:
    def __init__(self, rowcount):
        self.cursor = self  # Django's CursorWrapper exposes the driver cursor as .cursor
        self.rowcount = rowcount


def make_info():
    return _native.DbConnInfo("postgresql", "postgresql", "shop", "db.internal", 5433, "default",
                              "psycopg:3", False)


def test_executor_called_once_with_the_arguments(spans):
    calls = []
    result = object()

    def executor(sql, params, many, context):
        calls.append((sql, params, many, context))
        return result

    info = make_info()
    sql = "SELECT * FROM orders WHERE id = %s"
    params = [42]
    context = {"connection": None, "cursor": FakeCursor(1)}
    assert _native.db_execute(info, executor, sql, params, False, context) is result
    assert calls == [(sql, params, False, context)]
    [span] = db_spans(spans)
    a = span.attributes
    assert span.name == "SELECT orders"
    assert a["server.address"] == "db.internal" and a["server.port"] == 5433
    assert a["db.namespace"] == "shop"
    assert a["db.response.returned_rows"] == 1
    assert a["code.filepath"] == __file__
    assert a["code.function"] == "test_executor_called_once_with_the_arguments"


def test_partial_binding_as_django_builds_it(spans):
    # Django wraps the executor with functools.partial(wrapper, executor); ours is itself a
    # partial, which CPython flattens.
    wrapper = functools.partial(_native.db_execute, make_info())
    executor = functools.partial(wrapper, lambda sql, params, many, context: "ok")
    assert executor.func is _native.db_execute
    assert executor("DELETE FROM orders", None, False, {"cursor": FakeCursor(3)}) == "ok"
    [span] = db_spans(spans)
    assert span.attributes["djtrace.db.rows_affected"] == 3


def test_exceptions_pass_through_unchanged(spans):
    error = ValueError("boom\nDETAIL: Key (email)=(secret@secret.example) exists")

    def executor(sql, params, many, context):
        raise error

    with pytest.raises(ValueError) as info:
        _native.db_execute(make_info(), executor, "INSERT INTO t VALUES (%s)", ["x"], False, {})
    assert info.value is error
    [span] = db_spans(spans)
    assert span.attributes["error.type"] == "ValueError"
    [event] = span.events
    assert event.attributes["exception.message"] == "boom"
    assert "secret" not in repr(span.attributes) + repr(event.attributes)


def test_wrong_arguments_and_non_text_sql(spans):
    with pytest.raises(TypeError):
        _native.db_execute(make_info())
    # A composed statement (psycopg.sql.Composed, bytes...): traced, named after the system.
    assert _native.db_execute(make_info(), lambda *a: 7, b"SELECT 1", None, False, {}) == 7
    [span] = db_spans(spans)
    assert span.name == "postgresql"
    assert "db.query.text" not in span.attributes


def test_not_a_connection_info_means_untraced(spans):
    assert _native.db_execute(object(), lambda *a: 5, "SELECT 1", None, False, {}) == 5
    assert db_spans(spans) == []


def test_suppressed(spans):
    calls = []
    with _suppress.suppress():
        _native.db_execute(make_info(), lambda *a: calls.append(a), "SELECT 1", None, False, {})
    assert len(calls) == 1
    assert db_spans(spans) == []


def test_no_reference_leaks(spans):
    info = make_info()
    sql = "SELECT * FROM orders WHERE reference = %s"
    params = ["REF"]
    context = {"cursor": FakeCursor(0)}
    result = object()

    def ok(sql, params, many, context):
        return result

    def fail(sql, params, many, context):
        raise KeyError("x")  # a fresh one: a re-raised exception would keep growing tracebacks

    tracer = trace.get_tracer("test")

    def run(n):
        with tracer.start_as_current_span("root"):
            for _ in range(n):
                _native.db_execute(info, ok, sql, params, False, context)
                try:
                    _native.db_execute(info, fail, sql, params, True, context)
                except KeyError:
                    pass

    run(50)
    gc.collect()
    before = [sys.getrefcount(o) for o in (info, sql, params, context, result, ok, fail)]
    run(500)
    gc.collect()
    after = [sys.getrefcount(o) for o in (info, sql, params, context, result, ok, fail)]
    assert after == before


def test_repeated_cache_gets_are_counted_natively(spans):
    # The per-root statistics also count cache reads by key (for a cache integration that
    # reports through them): the 5th read of a key flags it.
    from djtrace.integrations.django import db

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        db.begin_local_root(root)
        flags = [_native.record_cache_get("default", "user:42", None, i % 2 == 0)
                 for i in range(6)]
        _native.record_cache_get("default", "other", None, False)
    assert flags == [False, False, False, False, True, False]
    assert not _native.record_cache_get("default", "outside any root", None, True)
    root = spans.one("root")
    assert root.attributes["djtrace.cache.repeated_get_count"] == 5
    [event] = [e for e in root.events if e.name == "djtrace.cache.repeated_get"]
    assert event.attributes["djtrace.cache.get_count"] == 6
    assert event.attributes["djtrace.cache.hit_count"] == 3
    assert event.attributes["code.filepath"] == __file__
    assert "user:42" not in repr(root.attributes) + repr(event.attributes)


def test_a_new_connection_with_the_same_settings_keeps_the_connection_info(spans):
    # Django opens a connection per request by default (CONN_MAX_AGE=0): each gets the same
    # DbConnInfo, whose statements' shared attributes are built once, not once per request,
    # and the same execute wrapper.
    from django.db import connection

    from djtrace.integrations.django import db

    def ours():
        [wrapper] = [w for w in connection.execute_wrappers if db._is_ours(w)]
        return wrapper

    connection.ensure_connection()
    first_wrapper = ours()
    first = first_wrapper.args[0]
    db._on_connection_created(connection=connection)  # as Django signals a new connection
    assert ours() is first_wrapper and ours().args[0] is first
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert db_spans(spans)[-1].attributes["db.query.text"] == "SELECT ?"
    other = dict(connection.settings_dict, NAME="elsewhere")
    saved = connection.settings_dict
    connection.settings_dict = other
    try:
        changed = db.connection_info(connection)
    finally:
        connection.settings_dict = saved
    assert changed is not first and changed.attributes()["db.namespace"] == "elsewhere"
