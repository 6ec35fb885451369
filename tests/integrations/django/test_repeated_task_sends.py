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

    @app.task(name="shop.tasks.note_exists")
    def note_exists(pk):
        from project.web.models import Note

        return Note.objects.filter(pk=pk).exists()

    @app.task(name="shop.tasks.check_notes")
    def check_notes(pks):
        from project.web.models import Note

        return [Note.objects.filter(pk=pk).exists() for pk in pks]

    app.notify = notify
    app.note_exists = note_exists
    app.check_notes = check_notes
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


@pytest.mark.django_db
@pytest.mark.parametrize("eagerly", [False, True], ids=["sent", "run eagerly"])
def test_n_plus_one_strict_raises_at_the_send(app, eagerly):
    # Run eagerly, the task raises from the run that stands for the send completing the group.
    app.conf.task_always_eager = eagerly
    try:
        with override_settings(DJTRACE={"n_plus_one_strict": True}):
            with tracer.start_as_current_span("command"):
                with pytest.raises(RepeatedTaskSendError) as info:
                    notify_each(app, range(6))
    finally:
        app.conf.task_always_eager = False
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


@pytest.fixture
def eager(app):
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.mark.django_db
@override_settings(DJTRACE={"n_plus_one_strict": True, "task_send_repeat_threshold": 0})
def test_tasks_run_eagerly_are_checked_one_by_one_as_in_a_worker(eager, spans):
    # In a worker each task is a root of its own; run eagerly (as tests do), the tasks a loop
    # sends must not add up to an N+1 in the caller's root, one query per task.
    from project.web.models import Note

    with tracer.start_as_current_span("caller") as caller:
        Note.objects.count()
        for pk in range(6):
            eager.note_exists.delay(pk)
    runs = spans.by_name("process shop.tasks.note_exists")
    assert len(runs) == 6
    for run in runs:
        assert run.parent.span_id == caller.get_span_context().span_id
        assert run.attributes["djtrace.db.query_count"] == 1
        assert run.attributes["djtrace.n_plus_one.count"] == 0
    # The caller counts its own query only, as it would with the tasks sent to a worker, and
    # the six sends (repeated sends are off here).
    assert spans.one("caller").attributes["djtrace.db.query_count"] == 1
    assert spans.one("caller").attributes["djtrace.celery.send_count"] == 6


@pytest.mark.django_db
def test_an_n_plus_one_inside_a_task_run_eagerly_is_found_on_its_span(eager, spans):
    with pytest.raises(AssertionError, match="N\\+1 queries detected"):
        with testing.assert_no_n_plus_one():
            with tracer.start_as_current_span("caller"):
                eager.check_notes.delay(list(range(6)))
    run = spans.one("process shop.tasks.check_notes")
    assert run.attributes["djtrace.db.query_count"] == 6
    assert run.attributes["djtrace.n_plus_one.count"] == 1
    [event] = [e for e in run.events if e.name == "djtrace.n_plus_one"]
    assert event.attributes["code.function"].endswith("check_notes.<locals>.<listcomp>")
    # The caller ran no query; the eager run counts there as the send it stands for.
    caller = spans.one("caller").attributes
    assert caller["djtrace.db.query_count"] == 0
    assert caller["djtrace.celery.send_count"] == 1


@pytest.mark.django_db
def test_tasks_run_eagerly_count_as_the_sends_they_stand_for(eager, spans):
    with pytest.raises(AssertionError) as info:
        with testing.assert_no_n_plus_one() as report:
            with tracer.start_as_current_span("caller"):
                line = notify_each(eager, range(6))
                stats = db.query_stats()
    assert f"5 × shop.tasks.notify from {__file__}:{line} in notify_each" in str(info.value)
    assert [f["kind"] for f in report.findings] == ["repeated_task_send"]
    assert stats["task_send_count"] == 6
    assert len(spans.by_name("process shop.tasks.notify")) == 6
    assert spans.by_name("send shop.tasks.notify") == []  # nothing was sent


def test_apply_and_sends_outside_eager_mode_are_not_counted_twice(app):
    with tracer.start_as_current_span("caller"):
        for i in range(3):
            app.notify.apply((i,))  # run here on purpose: not a send
        notify_each(app, range(2))  # sent through the broker: counted once each
        stats = db.query_stats()
    assert stats["task_send_count"] == 2


def test_override_settings_reaches_the_celery_keys(app):
    with override_settings(DJTRACE={"task_send_repeat_threshold": 0}):
        with testing.assert_no_n_plus_one():
            with tracer.start_as_current_span("command"):
                notify_each(app, range(6))
    with pytest.raises(AssertionError, match="5 × shop.tasks.notify"):
        with testing.assert_no_n_plus_one():
            with tracer.start_as_current_span("command"):
                notify_each(app, range(6))
