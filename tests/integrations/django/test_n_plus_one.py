"""N+1 and duplicate detection: the guide's bad and good listings, thresholds, warnings,
strict mode and the djtrace.testing helpers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _dbhelpers import SHOP_VIEWS, db_spans, events, line_of, make_shop, quoted, server_span
from django.conf import settings
from django.test import AsyncClient, Client, override_settings
from opentelemetry import trace

from djtrace import testing
from djtrace.integrations.django import db
from djtrace.testing import no_n_plus_one, query_report  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(spans):
    orders = make_shop()
    spans.clear()
    return orders


def findings_by_relation(span) -> dict:
    return {e.attributes.get("djtrace.orm.relation"): e.attributes
            for e in events(span, "djtrace.n_plus_one")}


def test_bad_listing_is_flagged_with_relation_sql_and_call_site(shop, spans):
    assert settings.DEBUG is False  # production settings: no connection.queries needed
    Client().get("/shop/orders/bad/")
    root = server_span(spans)
    a = root.attributes
    assert a["djtrace.db.query_count"] == 13  # 1 + 6 customers + 6 item lists
    assert a["djtrace.n_plus_one.count"] == 2
    assert a["djtrace.db.duplicate_count"] == 0  # every lazy load has its own id
    assert a["djtrace.db.duration_ms"] > 0
    found = findings_by_relation(root)
    assert set(found) == {"Order.customer", "Order.items"}
    customer = found["Order.customer"]
    assert customer["db.query.text"] == quoted(
        'SELECT "customers"."id", "customers"."name", "customers"."email" FROM "customers" '
        'WHERE "customers"."id" = %s LIMIT ?')
    assert customer["db.query.summary"] == "SELECT customers"
    assert customer["djtrace.n_plus_one.count"] == 6
    assert customer["djtrace.n_plus_one.duration_ms"] > 0
    assert customer["code.filepath"] == str(SHOP_VIEWS)
    assert customer["code.lineno"] == line_of("bad-customer")
    assert customer["code.function"] == "orders_bad"
    assert len(customer["djtrace.db.fingerprint"]) == 16
    items = found["Order.items"]
    assert items["db.query.text"].startswith(quoted('SELECT "order_items"."id"'))
    assert items["db.query.text"].endswith(quoted('WHERE "order_items"."order_id" = %s'))
    assert items["code.lineno"] == line_of("bad-items")
    assert items["djtrace.n_plus_one.count"] == 6
    # The event is stamped when the group crossed the threshold (the 5th execution).
    fifth = [q for q in db_spans(spans) if q.name == "SELECT customers"][4]
    [event] = [e for e in events(root, "djtrace.n_plus_one")
               if e.attributes["djtrace.orm.relation"] == "Order.customer"]
    assert event.timestamp == fifth.end_time


def test_good_listing_is_not_flagged(shop, spans):
    Client().get("/shop/orders/good/")
    root = server_span(spans)
    assert root.attributes["djtrace.db.query_count"] == 2
    assert root.attributes["djtrace.n_plus_one.count"] == 0
    assert root.attributes["djtrace.db.duplicate_count"] == 0
    assert events(root, "djtrace.n_plus_one") == []


def test_other_lazy_loads_are_flagged_with_their_relation(shop, spans):
    Client().get("/shop/profiles/")
    root = server_span(spans)
    found = findings_by_relation(root)
    assert set(found) == {"Customer.profile", "Order.tags"}
    assert found["Customer.profile"]["code.lineno"] == line_of("profile")
    assert found["Order.tags"]["code.lineno"] == line_of("tags")
    spans.clear()
    Client().get("/shop/counts/")
    found = findings_by_relation(server_span(spans))
    assert set(found) == {"Order.items"}
    assert found["Order.items"]["db.query.summary"] == "SELECT order_items"
    assert found["Order.items"]["code.lineno"] == line_of("count")


def _statements(spans) -> list:
    """The database spans of the application's statements, without the ones a backend runs
    on each new connection (MySQL's SET ...), which a worker thread's connection adds."""
    return [q for q in db_spans(spans) if q.name.split()[0] in ("SELECT", "INSERT", "UPDATE")]


def _get_async(path: str) -> None:
    """GET `path` through Django's async client, then close the connections the view's worker
    threads opened (they stay open otherwise). Tests using it need transaction=True."""
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    async def run():
        await AsyncClient().get(path)
        await sync_to_async(connections.close_all)()

    asyncio.run(run())


@pytest.mark.django_db(transaction=True)  # the view's thread has its own connection
def test_async_view_listing_is_flagged(shop, spans):
    _get_async("/shop/orders/async/")
    root = server_span(spans)
    found = findings_by_relation(root)
    assert set(found) == {"Order.customer"}
    assert found["Order.customer"]["code.lineno"] == line_of("async")
    # (Python 3.11 runs the comprehension as a function of its own; 3.12 inlines it.)
    assert found["Order.customer"]["code.function"] in (
        "orders_async.<locals>.listing", "orders_async.<locals>.listing.<locals>.<listcomp>")
    assert all(q.context.trace_id == root.context.trace_id for q in db_spans(spans))


@pytest.mark.django_db(transaction=True)  # the view's thread has its own connection
def test_async_api_queries_have_the_awaiting_line_as_call_site(shop, spans):
    # QuerySet.aget, `async for` and Model.asave run the ORM in a worker thread whose stack
    # has no frame of the view's: the call site is the line that awaited, on the event loop.
    _get_async("/shop/orders/async-api/")
    root = server_span(spans)
    [finding] = events(root, "djtrace.n_plus_one")
    assert finding.attributes["code.lineno"] == line_of("async-aget")
    assert finding.attributes["code.function"] == "orders_async_api"
    assert finding.attributes["djtrace.n_plus_one.count"] == 6
    queries = _statements(spans)
    assert {q.name for q in queries} == {"SELECT orders", "SELECT customers", "UPDATE orders"}
    for q in queries:
        assert q.attributes["code.filepath"] == str(SHOP_VIEWS), q.name
        assert q.attributes["code.function"] == "orders_async_api", q.name
    [listing] = [q for q in queries if q.name == "SELECT orders"][:1]
    assert listing.attributes["code.lineno"] == line_of("async-iter")
    [update] = [q for q in queries if q.name == "UPDATE orders"]
    assert update.attributes["code.lineno"] == line_of("async-asave")


@pytest.mark.django_db(transaction=True)
def test_an_awaited_call_site_stays_with_its_await(spans):
    # The awaited site is in the context only while its call runs: Django's code run later
    # through sync_to_async, with no frame of the application's, gets no call site from it.
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections
    from project.shop.models import Customer

    async def run():
        await Customer.objects.acount()  # query: awaited here
        assert db.AWAITED_SITE.get() is None
        await sync_to_async(Customer.objects.exists)()  # Django's own method: no frame of ours
        await sync_to_async(connections.close_all)()

    with trace.get_tracer("test").start_as_current_span("root"):
        asyncio.run(run())
    count, exists = _statements(spans)
    assert count.attributes["code.filepath"] == __file__
    assert count.attributes["code.lineno"] == line_of("awaited here", Path(__file__))
    assert count.attributes["code.function"] == (
        "test_an_awaited_call_site_stays_with_its_await.<locals>.run")
    assert "code.filepath" not in exists.attributes


@pytest.mark.django_db(transaction=True)
def test_application_frames_in_the_worker_thread_win_over_the_awaited_site(spans):
    # A signal receiver of the application's runs inside asave's worker thread: its own query
    # is its own line's, not the line that awaited asave.
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections
    from django.db.models.signals import post_save
    from project.web.models import Note

    def on_save(sender, instance, **kwargs):
        Note.objects.filter(pk=instance.pk).exists()  # query: receiver

    async def run():
        note = Note(title="async")
        await note.asave()  # query: asave
        await sync_to_async(connections.close_all)()

    post_save.connect(on_save, sender=Note)
    try:
        with trace.get_tracer("test").start_as_current_span("root"):
            asyncio.run(run())
    finally:
        post_save.disconnect(on_save, sender=Note)
    insert, receiver = _statements(spans)
    here = Path(__file__)
    assert insert.attributes["code.lineno"] == line_of("asave", here)
    assert receiver.attributes["code.lineno"] == line_of("receiver", here)


def test_duplicates_are_counted(shop, spans):
    Client().get("/shop/duplicates/")
    root = server_span(spans)
    assert root.attributes["djtrace.db.query_count"] == 6
    assert root.attributes["djtrace.db.duplicate_count"] == 2
    assert root.attributes["djtrace.n_plus_one.count"] == 0  # 4 executions < 5


def test_literal_values_make_different_executions(shop, spans):
    from django.db import connection

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("job"):
        with connection.cursor() as cursor:
            for ref in ("REF-1", "REF-2", "REF-1"):
                cursor.execute(f"SELECT id FROM orders WHERE reference = '{ref}'")
    job = spans.one("job")
    assert job.attributes["djtrace.db.query_count"] == 3
    assert job.attributes["djtrace.db.duplicate_count"] == 1


@override_settings(DJTRACE={"n_plus_one_threshold": 7})
def test_count_threshold_is_configurable(shop, spans):
    Client().get("/shop/orders/bad/")
    assert server_span(spans).attributes["djtrace.n_plus_one.count"] == 0


@override_settings(DJTRACE={"n_plus_one_min_duration_ms": 60_000})
def test_duration_threshold_is_configurable(shop, spans):
    Client().get("/shop/orders/bad/")
    assert server_span(spans).attributes["djtrace.n_plus_one.count"] == 0


@override_settings(DJTRACE={"n_plus_one_threshold": 0})
def test_detection_can_be_turned_off(shop, spans):
    Client().get("/shop/orders/bad/")
    root = server_span(spans)
    assert root.attributes["djtrace.n_plus_one.count"] == 0
    assert events(root, "djtrace.n_plus_one") == []
    assert root.attributes["djtrace.db.query_count"] == 13  # still counted


def test_user_root_spans_get_statistics(shop, spans):
    from project.shop.models import Order

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("nightly-job") as job:
        for order in Order.objects.order_by("id"):
            order.customer.email  # noqa: B018 - the lazy load
        stats = db.query_stats(job)
    assert stats["query_count"] == 7
    assert stats["n_plus_one_count"] == 1
    [finding] = stats["findings"]
    assert finding["relation"] == "Order.customer"
    assert finding["filepath"] == __file__
    assert finding["function"] == "test_user_root_spans_get_statistics"
    job = spans.one("nightly-job")
    assert job.attributes["djtrace.n_plus_one.count"] == 1
    [event] = events(job, "djtrace.n_plus_one")
    assert event.attributes["code.filepath"] == __file__


def test_warning_is_logged(shop, spans, caplog):
    with override_settings(DJTRACE={"n_plus_one_warn": True}):
        with caplog.at_level(logging.WARNING, logger="djtrace.n_plus_one"):
            Client().get("/shop/orders/bad/")
    messages = [r.getMessage() for r in caplog.records if r.name == "djtrace.n_plus_one"]
    assert len(messages) == 2
    customer = next(m for m in messages if "Order.customer" in m)
    assert f"views.py:{line_of('bad-customer')} in orders_bad" in customer
    assert quoted('FROM "customers" WHERE "customers"."id" = %s') in customer


def test_warning_follows_debug_by_default(shop, spans, caplog):
    with caplog.at_level(logging.WARNING, logger="djtrace.n_plus_one"):
        Client().get("/shop/orders/bad/")
        assert not [r for r in caplog.records if r.name == "djtrace.n_plus_one"]
        with override_settings(DEBUG=True):
            Client().get("/shop/orders/bad/")
    assert len([r for r in caplog.records if r.name == "djtrace.n_plus_one"]) == 2


@override_settings(DJTRACE={"n_plus_one_strict": True})
def test_strict_mode_raises_at_the_query(shop, spans):
    with pytest.raises(db.NPlusOneError) as info:
        Client().get("/shop/orders/bad/")
    message = str(info.value)
    assert "lazy loading of Order.customer" in message
    assert f"views.py:{line_of('bad-customer')}" in message
    assert info.value.finding["count"] == 5
    Client().get("/shop/orders/good/")  # no N+1: no error


def test_assert_no_n_plus_one_fails_on_the_bad_listing(shop):
    with pytest.raises(AssertionError) as info:
        with testing.assert_no_n_plus_one():
            Client().get("/shop/orders/bad/")
    message = str(info.value)
    assert message.startswith("N+1 queries detected:")
    # Reported when the group crossed the threshold, at its 5th execution.
    assert "lazy loading of Order.customer, 5 executions of the same statement" in message
    assert "lazy loading of Order.items" in message
    assert f"{SHOP_VIEWS}:{line_of('bad-customer')} in orders_bad" in message
    assert quoted('FROM "order_items" WHERE "order_items"."order_id" = %s') in message


def test_assert_no_n_plus_one_passes_on_the_good_listing(shop):
    with testing.assert_no_n_plus_one() as report:
        Client().get("/shop/orders/good/")
    assert report.count == 2
    assert report.n_plus_one == []


def test_assert_no_n_plus_one_outside_requests(shop):
    from project.shop.models import Order

    with pytest.raises(AssertionError) as info:
        with testing.assert_no_n_plus_one():
            for order in Order.objects.all():
                order.customer.name  # noqa: B018 - the lazy load
    assert "lazy loading of Order.customer" in str(info.value)
    assert f"{__file__}:" in str(info.value)
    with testing.assert_no_n_plus_one():
        for order in Order.objects.select_related("customer"):
            order.customer.name  # noqa: B018


def test_separate_requests_are_separate_roots(shop):
    # Four requests that each load one customer are no N+1 (each root runs it once).
    with testing.assert_no_n_plus_one() as report:
        for _ in range(6):
            Client().get("/shop/duplicates/")
    assert report.count == 36


def test_query_count_helpers(shop):
    with testing.assert_num_queries(2):
        Client().get("/shop/orders/good/")
    with pytest.raises(AssertionError) as info:
        with testing.assert_num_queries(2):
            Client().get("/shop/orders/bad/")
    assert "expected 2 queries, 13 ran" in str(info.value)
    assert "SELECT customers  at " in str(info.value)
    assert "[Order.customer]" in str(info.value)
    with testing.assert_max_queries(13):
        Client().get("/shop/orders/bad/")
    with pytest.raises(AssertionError):
        with testing.assert_max_queries(12):
            Client().get("/shop/orders/bad/")
    with testing.capture_queries() as q:
        Client().get("/shop/duplicates/")
        Client().get("/shop/duplicates/")
    assert q.count == 12
    assert q.duplicates == 2 + 6  # within each request, then the second request repeats all
    assert q.queries[0]["summary"] == "SELECT customers"
    assert q.queries[-1]["lineno"] == line_of("duplicate")


def test_fixtures(shop, query_report, no_n_plus_one):  # noqa: F811 - the imported fixtures
    Client().get("/shop/orders/good/")
    assert query_report.count == 2
    assert no_n_plus_one.count == 2


def test_bounded_groups(shop, spans):
    from django.db import connection

    tracer = trace.get_tracer("test")
    with override_settings(DJTRACE={"n_plus_one_max_groups": 2, "n_plus_one_threshold": 2}):
        with tracer.start_as_current_span("job") as job:
            with connection.cursor() as cursor:
                for _ in range(2):
                    for table in ("orders", "customers", "tags", "order_items"):
                        cursor.execute(f"SELECT count(*) FROM {table}")
            stats = db.query_stats(job)
    assert stats["query_count"] == 8
    assert stats["ungrouped"] == 4
    assert stats["n_plus_one_count"] == 2


def test_begin_local_root_lets_earlier_children_share_the_statistics(shop, spans):
    from project.shop.models import Order

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("task") as task:
        assert db.begin_local_root(task) is True
        with tracer.start_as_current_span("step"):  # started before any query
            for order in Order.objects.order_by("id"):
                order.customer.name  # noqa: B018
    task = spans.one("task")
    assert task.attributes["djtrace.db.query_count"] == 7
    assert task.attributes["djtrace.n_plus_one.count"] == 1
    assert db.begin_local_root(None) is False
