"""Database spans: names, attributes, parents, query source, obfuscation, errors, executemany,
raw cursors, queries outside requests, suppression and sqlcommenter."""

from __future__ import annotations

import os
import re
import sys

import pytest
from _dbhelpers import (
    MYSQL,
    POSTGRES,
    SECRETS,
    SHOP_VIEWS,
    VENDOR,
    all_text,
    db_spans,
    line_of,
    make_shop,
    quoted,
    server_span,
)
from django.db import connection
from django.test import Client, override_settings
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations.django import db

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(spans):
    orders = make_shop()
    spans.clear()
    return orders


def test_orm_query_span_in_a_view(shop, spans):
    Client().get("/shop/orders/good/")
    request = server_span(spans)
    view = spans.one("orders_good")
    queries = db_spans(spans)
    assert [q.name for q in queries] == ["SELECT orders", "SELECT order_items"]
    first = queries[0]
    assert first.kind is SpanKind.CLIENT
    assert first.parent.span_id == view.context.span_id
    assert first.context.trace_id == request.context.trace_id
    a = first.attributes
    assert a["db.system.name"] == VENDOR
    assert a["db.system"] == VENDOR
    assert a["db.operation.name"] == "SELECT"
    assert a["db.collection.name"] == "orders"
    assert a["db.query.text"].startswith(quoted('SELECT "orders"."id", "orders"."customer_id"'))
    assert quoted('INNER JOIN "customers"') in a["db.query.text"]
    assert a["db.namespace"] == connection.settings_dict["NAME"]
    if POSTGRES or MYSQL:
        assert a["server.address"] == "127.0.0.1"
        assert a["server.port"] == int(connection.settings_dict["PORT"])
        assert a["db.response.returned_rows"] == 6
    else:
        assert "server.address" not in a
    # Query source: the line of the view that made the query run.
    assert a["code.filepath"] == str(SHOP_VIEWS)
    assert a["code.lineno"] == line_of("good-orders")
    assert a["code.function"] == "orders_good"
    assert "djtrace.orm.relation" not in a  # not a lazy load
    assert first.status.status_code is StatusCode.UNSET
    # The prefetch query is attributed to the same loop line.
    assert queries[1].attributes["code.lineno"] == line_of("good-orders")
    assert "djtrace.orm.relation" not in queries[1].attributes


def test_query_source_points_at_each_line(shop, spans):
    Client().get("/shop/orders/bad/")
    by_line = {}
    for q in db_spans(spans):
        assert q.attributes["code.filepath"] == str(SHOP_VIEWS)
        assert q.attributes["code.function"] == "orders_bad"
        by_line.setdefault(q.attributes["code.lineno"], set()).add(q.name)
    assert by_line == {
        line_of("bad-orders"): {"SELECT orders"},
        line_of("bad-customer"): {"SELECT customers"},
        line_of("bad-items"): {"SELECT order_items"},
    }


def test_relations_on_lazy_loads(shop, spans):
    Client().get("/shop/orders/bad/")
    relations = {q.name: q.attributes.get("djtrace.orm.relation") for q in db_spans(spans)}
    assert relations == {"SELECT orders": None, "SELECT customers": "Order.customer",
                         "SELECT order_items": "Order.items"}
    spans.clear()
    Client().get("/shop/profiles/")
    found = {(q.attributes.get("djtrace.orm.relation"), q.attributes["code.lineno"])
             for q in db_spans(spans)}
    assert ("Customer.profile", line_of("profile")) in found
    assert ("Order.tags", line_of("tags")) in found
    spans.clear()
    Client().get("/shop/counts/")
    counts = [q for q in db_spans(spans) if q.attributes.get("djtrace.orm.relation")]
    assert len(counts) == 6
    assert {q.attributes["djtrace.orm.relation"] for q in counts} == {"Order.items"}
    assert {q.attributes["code.lineno"] for q in counts} == {line_of("count")}


def test_relation_descriptors_pass_class_access_and_errors_through(shop, spans):
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from project.shop.models import Customer, CustomerProfile

    from djtrace.integrations.django.db import RELATION

    # Read on the class, a descriptor is itself, as Django makes it.
    assert isinstance(Customer.profile, ReverseOneToOneDescriptor)
    assert isinstance(CustomerProfile.customer, ForwardManyToOneDescriptor)
    lonely = Customer.objects.create(name="No Profile", email="np@example.com")
    spans.clear()
    with pytest.raises(Customer.profile.RelatedObjectDoesNotExist):
        lonely.profile  # noqa: B018 - the lazy load raises
    assert RELATION.get() is None  # restored after the failed load
    [query] = db_spans(spans)
    assert query.attributes["djtrace.orm.relation"] == "Customer.profile"
    # Forward one-to-one: ForwardOneToOneDescriptor.get_object reaches the wrapper by super().
    profile = CustomerProfile.objects.create(customer=lonely)
    profile = CustomerProfile.objects.get(pk=profile.pk)
    spans.clear()
    assert profile.customer.pk == lonely.pk
    [query] = db_spans(spans)
    assert query.attributes["djtrace.orm.relation"] == "CustomerProfile.customer"


def test_reverse_relation_from_the_other_side_and_prefetch_is_not_a_lazy_load(shop, spans):
    from project.shop.models import Customer, Tag

    tag = Tag.objects.first()
    spans.clear()
    list(tag.orders.all())  # reverse many-to-many
    customer = Customer.objects.select_related("profile").first()
    list(customer.orders.all())  # reverse foreign key
    list(Customer.objects.prefetch_related("orders"))
    rel = [(q.name, q.attributes.get("djtrace.orm.relation")) for q in db_spans(spans)]
    assert rel == [
        ("SELECT orders", "Tag.orders"),
        ("SELECT customers", None),
        ("SELECT orders", "Customer.orders"),
        ("SELECT customers", None),
        ("SELECT orders", None),
    ]


def test_no_literal_reaches_a_span(shop, spans):
    Client().get("/shop/raw/", {"email": "c1@secret.example"})
    raw = [q for q in db_spans(spans)]
    assert [q.name for q in raw] == ["SELECT customers", "SELECT orders"]
    param, literal = raw
    assert param.attributes["db.query.text"] == "SELECT id, name FROM customers WHERE email = %s"
    assert param.attributes["code.lineno"] == line_of("raw-param")
    assert literal.attributes["db.query.text"] == (
        "SELECT count(*) FROM orders WHERE reference = ? AND total > ?")
    # The call spans two lines: the frame's line is where the call starts on 3.11+.
    assert literal.attributes["code.lineno"] in (line_of("raw-literal"), line_of("raw-literal") + 1)
    text = all_text(db_spans(spans))  # (the request's url.query is the HTTP layer's business)
    for secret in SECRETS:
        assert secret not in text


# Each database's own literal forms, sent to the real server through a raw cursor: the
# statement must run (the server parses it as the obfuscator did) and no literal may reach the
# span.
OWN_LITERALS = {
    "postgresql": (
        "SELECT count(*) FROM orders WHERE reference = E'it\\'s SECRET-REF-4242' "
        "OR reference = $tag$SECRET-TOKEN-123$tag$ OR total > 1234.5",
        "SELECT count(*) FROM orders WHERE reference = ? OR reference = ? OR total > ?"),
    "mariadb": (
        'SELECT count(*) FROM `orders` WHERE reference = "SECRET-REF-4242" '
        "OR reference = 'it\\'s SECRET-TOKEN-123' OR total > 0x1234 OR total > 1234.5",
        "SELECT count(*) FROM `orders` WHERE reference = ? OR reference = ? OR total > ? "
        "OR total > ?"),
    "sqlite": (
        "SELECT count(*) FROM orders WHERE reference = 'it''s SECRET-REF-4242' "
        "OR reference = X'534B552D534543524554' OR total > 1234.5",
        "SELECT count(*) FROM orders WHERE reference = ? OR reference = ? OR total > ?"),
}


def test_each_databases_own_literal_forms_are_obfuscated(shop, spans):
    statement, expected = OWN_LITERALS[VENDOR]
    with connection.cursor() as cursor:
        cursor.execute(statement)
        assert cursor.fetchone() == (0,)
    [span] = db_spans(spans)
    assert span.name == "SELECT orders"
    assert span.attributes["db.query.text"] == expected
    for secret in SECRETS:
        assert secret not in all_text([span])


def test_executemany_span(shop, spans):
    Client().get("/shop/executemany/")
    [many] = [q for q in db_spans(spans) if q.name == "INSERT order_items"]
    a = many.attributes
    assert a["db.operation.batch.size"] == 7
    assert a["db.operation.name"] == "INSERT"
    assert a["db.query.text"] == (
        "INSERT INTO order_items (order_id, sku, quantity) VALUES (%s, %s, %s)")
    assert a["code.lineno"] == line_of("executemany")
    if a.get("djtrace.db.rows_affected") is not None:
        assert a["djtrace.db.rows_affected"] == 7
    assert "SKU-SECRET" not in all_text(spans.spans)


def test_failed_query(shop, spans):
    response = Client().get("/shop/error/")
    assert response.status_code == 200
    [failed] = [q for q in db_spans(spans)
                if q.attributes.get("db.collection.name") == "no_such_table"]
    assert failed.name == "SELECT no_such_table"
    assert failed.status.status_code is StatusCode.ERROR
    expected_type = ("django.db.utils.ProgrammingError" if POSTGRES or MYSQL
                     else "django.db.utils.OperationalError")
    assert failed.attributes["error.type"] == expected_type
    [event] = [e for e in failed.events if e.name == "exception"]
    assert event.attributes["exception.type"] == expected_type
    assert "no_such_table" in event.attributes["exception.message"]
    assert "\n" not in event.attributes["exception.message"]
    assert failed.attributes["code.lineno"] in (line_of("error"), line_of("error") + 1)
    assert "SECRET-TOKEN-123" not in all_text(spans.spans)
    # The request itself did not fail.
    assert server_span(spans).status.status_code is StatusCode.UNSET


def test_queries_outside_any_request_get_root_spans(shop, spans):
    from project.shop.models import Customer

    Customer.objects.filter(email__endswith="@secret.example").count()  # a test-file line
    [q] = db_spans(spans)
    assert q.parent is None
    assert q.kind is SpanKind.CLIENT
    assert q.name == "SELECT customers"
    assert q.attributes["code.filepath"] == __file__
    assert q.attributes["code.function"] == "test_queries_outside_any_request_get_root_spans"
    assert "djtrace.db.query_count" not in q.attributes  # a lone query is no N+1 root
    assert "secret.example" not in all_text(spans.spans)


@override_settings(DJTRACE={"db_root_spans": False})
def test_root_spans_can_be_turned_off(shop, spans):
    from project.shop.models import Customer

    Customer.objects.count()
    assert db_spans(spans) == []
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("job"):
        Customer.objects.count()
    assert [q.name for q in db_spans(spans)] == ["SELECT customers"]


@override_settings(DJTRACE={"db_spans": False})
def test_db_spans_can_be_turned_off(shop, spans):
    Client().get("/shop/orders/bad/")
    assert db_spans(spans) == []
    assert "djtrace.db.query_count" not in server_span(spans).attributes


def test_suppressed_context_records_nothing(shop, spans):
    from project.shop.models import Customer

    with _suppress.suppress():
        assert Customer.objects.count() == 6
    key = context_api._SUPPRESS_INSTRUMENTATION_KEY  # the official switch
    token = context_api.attach(context_api.set_value(key, True))
    try:
        assert Customer.objects.count() == 6
    finally:
        context_api.detach(token)
    assert db_spans(spans) == []
    Customer.objects.count()
    assert len(db_spans(spans)) == 1


def test_excluded_urls_record_no_query(shop, spans):
    from djtrace.integrations.django import settings as dj_settings

    with override_settings(DJTRACE={"excluded_urls": "shop/orders/"}):
        dj_settings.reload()
        Client().get("/shop/orders/bad/")
    assert spans.spans == []


def test_transaction_spans(shop, spans):
    Client().get("/shop/tx/")
    [outer] = spans.by_name("transaction")
    [inner] = spans.by_name("savepoint")
    view = spans.one("tx")
    assert outer.parent.span_id == view.context.span_id
    assert inner.parent.span_id == outer.context.span_id
    assert outer.attributes["djtrace.db.transaction.outcome"] == "commit"
    assert outer.attributes["djtrace.db.transaction.savepoint"] is False
    assert outer.attributes["db.system.name"] == VENDOR
    assert outer.attributes["code.lineno"] == line_of("tx-outer")
    assert outer.status.status_code is StatusCode.UNSET
    assert inner.attributes["djtrace.db.transaction.outcome"] == "rollback"
    assert inner.attributes["djtrace.db.transaction.savepoint"] is True
    assert inner.attributes["code.lineno"] == line_of("tx-inner")
    assert inner.status.status_code is StatusCode.ERROR  # the ValueError left the block
    # Queries nest under the block that ran them.
    children = {q.name: q.parent.span_id for q in db_spans(spans)}
    assert children["INSERT orders"] == outer.context.span_id
    assert children["INSERT order_items"] == inner.context.span_id


def test_transaction_rollback(shop, spans):
    response = Client().get("/shop/tx/rollback/")
    assert response.json() == {"gone": True}
    [tx] = spans.by_name("transaction")
    assert tx.attributes["djtrace.db.transaction.outcome"] == "rollback"
    assert tx.attributes["code.lineno"] == line_of("tx-rollback")
    [insert] = [q for q in db_spans(spans) if q.name == "INSERT orders"]
    assert insert.parent.span_id == tx.context.span_id


@pytest.mark.django_db(transaction=True)
def test_real_commit_outside_a_test_transaction(spans):
    from django.db import transaction
    from project.shop.models import Customer

    with transaction.atomic():
        Customer.objects.create(name="Real", email="real@secret.example")
    [tx] = spans.by_name("transaction")
    assert tx.parent is None
    assert tx.attributes["djtrace.db.transaction.outcome"] == "commit"
    [insert] = [q for q in db_spans(spans) if q.name == "INSERT customers"]
    assert insert.parent.span_id == tx.context.span_id
    assert Customer.objects.filter(name="Real").exists()


@override_settings(DJTRACE={"db_transaction_spans": False})
def test_transaction_spans_can_be_turned_off(shop, spans):
    Client().get("/shop/tx/")
    assert spans.by_name("transaction") == [] and spans.by_name("savepoint") == []
    assert db_spans(spans)


def test_every_connection_is_instrumented(shop):
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        ours = [w for w in conn.execute_wrappers if db._is_ours(w)]
        if conn.connection is not None:
            assert len(ours) == 1, conn.alias


@pytest.mark.django_db(transaction=True)  # the thread's connection reads committed rows
def test_new_connections_are_instrumented(shop, spans):
    # A fresh connection (another thread gets its own) is instrumented on connect.
    import threading

    from project.shop.models import Customer

    result = {}

    def worker():
        from django.db import connection as thread_connection

        result["n"] = Customer.objects.count()
        result["wrappers"] = [db._is_ours(w) for w in thread_connection.execute_wrappers]
        thread_connection.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert result["wrappers"] == [True]
    assert [q.name for q in db_spans(spans)] == ["SELECT customers"]


def test_sqlcommenter(shop, spans):
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with override_settings(DJTRACE={"sqlcommenter": True}):
        with connection.execute_wrapper(record):
            response = Client().get("/shop/raw/", {"email": "c2@secret.example"})
    assert response.json()["found"] == 1  # the commented statement still ran correctly
    queries = db_spans(spans)
    param = queries[0]
    assert "traceparent" not in param.attributes["db.query.text"]
    commented = sent[0]
    ctx = param.context
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"
    # Parameters are interpolated with %-formatting, so the comment's % are doubled.
    assert commented == (
        "SELECT id, name FROM customers WHERE email = %s /*controller='project.shop.views.raw_sql',"
        f"db_driver='{db._driver(connection).replace(':', '%%3A')}',"
        f"framework='{db._framework().replace(':', '%%3A')}',"
        "route='shop%%2Fraw%%2F',"
        f"traceparent='{traceparent}'*/")
    # Without parameters, % stays single.
    literal = sent[1]
    assert literal.endswith(f"route='shop%2Fraw%2F',traceparent='00-{ctx.trace_id:032x}-"
                            f"{queries[1].context.span_id:016x}-01'*/")
    # Off again: nothing appended.
    sent.clear()
    with connection.execute_wrapper(record):
        Client().get("/shop/raw/")
    assert all("/*" not in s for s in sent)


def test_sqlcommenter_leaves_commented_statements_alone(shop, spans):
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with override_settings(DJTRACE={"sqlcommenter": True}):
        with connection.execute_wrapper(record):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 /* mine */")
                cursor.execute("SELECT 2;")
    assert sent[0] == "SELECT 1 /* mine */"
    assert re.fullmatch(r"SELECT 2 /\*.*traceparent='00-[0-9a-f]{32}-[0-9a-f]{16}-01'\*/;", sent[1])


def test_python_span_processor_sees_db_spans(shop, spans, monkeypatch):
    """A provider with a span processor written in Python: DB spans take its hooks."""
    from djtrace.sdk.trace import SpanProcessor, TracerProvider

    seen = []

    class Recorder(SpanProcessor):
        def on_start(self, span, parent_context=None):
            seen.append(("start", span.name))

        def on_end(self, span):
            seen.append(("end", span.name, dict(span.attributes)))

    provider = TracerProvider()
    provider.add_span_processor(Recorder())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    from project.shop.models import Customer

    with provider.get_tracer("t").start_as_current_span("job"):
        Customer.objects.filter(email="c3@secret.example").count()
    monkeypatch.undo()
    starts = [s for s in seen if s[0] == "start"]
    assert starts == [("start", "job"), ("start", "SELECT customers")]
    [end] = [s for s in seen if s[0] == "end" and s[1] == "SELECT customers"]
    assert end[2]["db.query.text"].endswith(quoted('WHERE "customers"."email" = %s'))
    assert end[2]["code.filepath"] == __file__
    [job] = [s for s in seen if s[0] == "end" and s[1] == "job"]
    assert job[2]["djtrace.db.query_count"] == 1


def test_attribute_limits_drop_the_same_on_the_python_path(shop, monkeypatch):
    """Under a count limit, a DB span keeps the same attributes and counts the same drops
    whether it starts natively or through a span processor written in Python."""
    from project.shop.models import Customer

    from djtrace.sdk import InMemorySpanExporter, SimpleSpanProcessor, SpanLimits
    from djtrace.sdk.trace import SpanProcessor, TracerProvider

    def run(with_python_processor: bool):
        provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=4),
                                  shutdown_on_exit=False)
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        if with_python_processor:
            provider.add_span_processor(SpanProcessor())
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
        try:
            with provider.get_tracer("t").start_as_current_span("job"):
                Customer.objects.filter(email="c5@secret.example").count()
        finally:
            monkeypatch.undo()
            provider.shutdown()
        [span] = [s for s in memory.get_finished_spans() if s.name == "SELECT customers"]
        return dict(span.attributes), span.dropped_attributes

    native, python = run(False), run(True)
    assert len(native[0]) == 4 and native[1] >= 5  # the statement alone carries 9 or more
    assert python == native


def test_official_sdk_provider_gets_db_spans_through_the_python_path(shop, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    from project.shop.models import Customer

    Customer.objects.filter(email="c4@secret.example").count()
    monkeypatch.undo()
    [span] = exporter.get_finished_spans()
    assert span.name == "SELECT customers"
    assert span.kind is SpanKind.CLIENT
    assert span.attributes["db.system.name"] == VENDOR
    assert span.attributes["db.query.text"].endswith(quoted('WHERE "customers"."email" = %s'))
    assert span.attributes["code.filepath"] == __file__


def test_old_semantic_convention_names_on_opt_in(shop, spans, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database/dup")
    db.refresh()  # reads the variable, computes the open connections' attributes again
    try:
        from project.shop.models import Customer

        Customer.objects.count()
        [q] = db_spans(spans)
        assert q.attributes["db.statement"] == q.attributes["db.query.text"]
        assert q.attributes["db.operation"] == "SELECT"
        assert q.attributes["db.name"] == connection.settings_dict["NAME"]
    finally:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
        db.refresh()
    Customer.objects.count()
    assert "db.statement" not in db_spans(spans)[-1].attributes


def test_bad_settings_are_reported_by_a_system_check():
    problems = db.load_settings({"n_plus_one_threshold": 1, "sqlcommenter": "maybe",
                                 "n_plus_one_min_duration_ms": -3}).problems
    assert len(problems) == 3
    assert any("n_plus_one_threshold" in p for p in problems)
    with override_settings(DJTRACE={"n_plus_one_max_groups": 0}):
        errors = db.check_settings()
    assert [e.id for e in errors] == [db.CHECK_ID]
    assert "n_plus_one_max_groups" in errors[0].msg
    env = db.load_settings({}, environ={"DJTRACE_N_PLUS_ONE_STRICT": "true"})
    assert env.n_plus_one_strict is True and not env.problems


def test_rows_of_an_insert_returning_are_not_reported_as_zero(spans):
    # Django inserts with RETURNING where the backend can. SQLite counts those rows only as
    # they are fetched, after the execute the span covers: no count beats a wrong 0 there.
    from project.web.models import Note

    with trace.get_tracer("test").start_as_current_span("root"):
        Note.objects.create(title="returning")
        Note.objects.filter(title="returning").update(body="b")
    [insert] = [q for q in db_spans(spans) if q.name == "INSERT web_note"]
    [update] = [q for q in db_spans(spans) if q.name == "UPDATE web_note"]
    returning = "RETURNING" in insert.attributes["db.query.text"]
    if connection.vendor == "sqlite" and returning:
        assert "djtrace.db.rows_affected" not in insert.attributes
    else:
        assert insert.attributes["djtrace.db.rows_affected"] == 1
    assert update.attributes["djtrace.db.rows_affected"] == 1


def _installed_package(tmp_path, monkeypatch):
    """A package `shoplib` of the application's, installed where call sites are not looked for
    (a directory the call-site walk skips, as it skips site-packages)."""
    import textwrap

    from djtrace.integrations import _callsite

    site = tmp_path / "site"
    pkg = site / "shoplib"
    (pkg / "management" / "commands").mkdir(parents=True)
    for init in (pkg, pkg / "management", pkg / "management" / "commands"):
        (init / "__init__.py").write_text("")
    (pkg / "listing.py").write_text(textwrap.dedent("""
        def note_exists(pk):
            from project.web.models import Note
            return Note.objects.filter(pk=pk).exists()  # the listing's query
    """))
    (pkg / "management" / "commands" / "shop_loop.py").write_text(textwrap.dedent("""
        from django.core.management.base import BaseCommand

        class Command(BaseCommand):
            def handle(self, *args, **options):
                from shoplib.listing import note_exists
                for pk in range(6):
                    note_exists(pk)
    """))
    for name in [m for m in sys.modules if m.split(".")[0] == "shoplib"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy
    monkeypatch.syspath_prepend(str(site))
    skipped = _callsite.skip_prefixes
    monkeypatch.setattr(_callsite, "skip_prefixes", lambda: [*skipped(), str(site) + os.sep])
    return pkg


def test_app_code_makes_an_installed_package_the_call_site(tmp_path, monkeypatch, spans):
    from django.core.management import call_command, load_command_class

    from djtrace.integrations.django.commands import is_project_command

    pkg = _installed_package(tmp_path, monkeypatch)
    with override_settings(DJTRACE={"n_plus_one_strict": True}):
        import shoplib.listing

        shoplib.listing.note_exists(1)  # a test-file line: the first frame not skipped
        assert not is_project_command(load_command_class("shoplib", "shop_loop"))
        call_command(load_command_class("shoplib", "shop_loop"))  # counted, not checked
    with override_settings(DJTRACE={"app_code": ["shoplib"], "n_plus_one_strict": True}):
        shoplib.listing.note_exists(1)
        assert is_project_command(load_command_class("shoplib", "shop_loop"))
        with pytest.raises(db.NPlusOneError) as info:
            call_command(load_command_class("shoplib", "shop_loop"))
    assert f"{pkg / 'listing.py'}:4 in note_exists" in str(info.value)
    outside, inside = [q for q in db_spans(spans) if q.parent is None][:2]
    assert outside.attributes["code.filepath"] == __file__
    assert inside.attributes["code.filepath"] == str(pkg / "listing.py")
    assert inside.attributes["code.function"] == "note_exists"
    assert inside.attributes["code.lineno"] == 4


def test_app_code_by_directory_and_its_bad_values(tmp_path, monkeypatch):
    from djtrace.integrations import _callsite

    pkg = _installed_package(tmp_path, monkeypatch)
    s = db.load_settings({}, environ={"DJTRACE_APP_CODE": f"{pkg}, shoplib"})
    assert s.app_code == (str(pkg), "shoplib") and not s.problems
    assert _callsite.resolve_app_code(list(s.app_code)) == [str(pkg) + os.sep]
    # The longest prefix decides. A longer skipped directory inside an application directory
    # stays skipped (a virtualenv inside the project)...
    with override_settings(DJTRACE={"app_code": [str(tmp_path)]}):
        assert not _native.db_is_app_path(str(pkg / "listing.py"))
        assert _native.db_is_app_path(str(tmp_path / "mine.py"))
    # ...and an application package inside a skipped directory is the application's.
    with override_settings(DJTRACE={"app_code": ["shoplib"]}):
        assert _native.db_is_app_path(str(pkg / "listing.py"))
        assert not _native.db_is_app_path(str(tmp_path / "site" / "other.py"))
    problems = db.load_settings({"app_code": ["no_such_package_here", "relative/dir"]}).problems
    assert problems == ["DJTRACE['app_code']: 'no_such_package_here' is neither an absolute "
                        "path nor an importable module"]
    assert db.load_settings({"app_code": "/no/such/dir"}).problems == [
        "DJTRACE['app_code']: '/no/such/dir' is not an existing directory or file"]
    assert "must be a list" in db.load_settings({"app_code": 3}).problems[0]
