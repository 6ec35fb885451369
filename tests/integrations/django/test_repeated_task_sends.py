"""Repeated Celery task sends in a Django process: the djtrace.testing N+1 helpers fail on them,
and the N+1 warning and strict settings apply to them (kombu's in-memory transport, no worker)."""

from __future__ import annotations

import logging

import pytest
from celery import Celery
from django.test import override_settings
from opentelemetry import trace

from djtrace import testing
from djtrace.integrations.celery import install
from djtrace.integrations.celery.producer import RepeatedTaskSendError
from djtrace.integrations.django import db

QUEUE = "django-repeat"
tracer = trace.get_tracer("tests")


@pytest.fixture(scope="module")
def app():
    install()
    app = Celery("django_repeat", broker="memory://")
    app.conf.task_ignore_result = True

    @app.task(name="shop.tasks.notify")
    def notify(order_id):
        return order_id

    app.notify = notify
    yield app
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)


def notify_each(app, ids) -> int:
    """Sends shop.tasks.notify once per id, from one line; returns that line."""
    for order_id in ids:
        app.notify.apply_async((order_id,), queue=QUEUE)
    return notify_each.__code__.co_firstlineno + 3


def test_assert_no_n_plus_one_fails_on_a_repeated_task_send(app):
    with pytest.raises(AssertionError) as info:
        with testing.assert_no_n_plus_one() as report:
            with tracer.start_as_current_span("command"):
                line = notify_each(app, range(7))
    message = str(info.value)
    assert message.startswith("Repeated task sends detected:")
    assert f"5 × shop.tasks.notify from {__file__}:{line} in notify_each" in message
    assert "N+1 queries detected" not in message
    [finding] = report.repeated_task_sends
    assert finding == {"kind": "repeated_task_send", "task_name": "shop.tasks.notify",
                       "count": 5, "filepath": __file__, "lineno": line,
                       "function": "notify_each"}
    assert report.n_plus_one == [] and report.findings == [finding]


def test_sends_outside_any_root_are_grouped_by_the_helper(app):
    with pytest.raises(AssertionError, match="5 × shop.tasks.notify"):
        with testing.assert_no_n_plus_one():
            notify_each(app, range(5))


def test_a_few_sends_pass(app):
    with testing.assert_no_n_plus_one() as report:
        with tracer.start_as_current_span("command"):
            notify_each(app, range(4))
    assert report.findings == []


def test_n_plus_one_strict_raises_at_the_send(app):
    with override_settings(DJTRACE={"n_plus_one_strict": True}):
        with tracer.start_as_current_span("command"):
            with pytest.raises(RepeatedTaskSendError) as info:
                notify_each(app, range(6))
    assert info.value.finding["count"] == 5
    assert isinstance(info.value, AssertionError)


def test_warning_follows_the_n_plus_one_warning_setting(app, caplog):
    with caplog.at_level(logging.WARNING, logger="djtrace.n_plus_one"):
        with tracer.start_as_current_span("command"):
            notify_each(app, range(5))
        assert not caplog.records  # DEBUG is False
        with override_settings(DJTRACE={"n_plus_one_warn": True}):
            with tracer.start_as_current_span("command"):
                line = notify_each(app, range(5))
    [record] = [r for r in caplog.records if r.name == "djtrace.n_plus_one"]
    assert record.getMessage() == (
        f"djtrace: repeated task sends: 5 × shop.tasks.notify from {__file__}:{line} in "
        "notify_each: use a group or a bulk task")


def test_query_stats_count_the_sends(app):
    with tracer.start_as_current_span("command"):
        notify_each(app, range(3))
        stats = db.query_stats()
    assert stats["task_send_count"] == 3
    assert stats["repeated_task_send_count"] == 0


def test_n_plus_one_findings_say_what_they_are():
    finding = {"kind": "n_plus_one", "sql": "SELECT 1", "count": 5, "duration_ms": 1.0,
               "filepath": None, "relation": None}
    assert db.describe_finding(finding).startswith("N+1 queries: 5 executions")
    del finding["kind"]  # findings made before kinds existed
    assert db.describe_finding(finding).startswith("N+1 queries: 5 executions")
