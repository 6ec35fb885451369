"""No finished span is lost when worker processes end, with no hook in the app: prefork
children recycled by max_tasks_per_child, warm shutdown (remote control and SIGTERM), a task
still running at SIGTERM, the solo and threads pools; beat's sends are roots of their own.

Every worker here exports with a 60 s batch delay, so spans can only reach the receiver through
the flush djtrace does when a process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from djtrace_celery_workers import BROKER, HERE, TESTS
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from support.otlp_receiver import OtlpHttpReceiver

LONG_DELAY = 60000
RESULT_TIMEOUT = 30


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = getattr(v, kind) if kind else None
    return out


def consumer_spans(receiver, task_ids: set) -> list:
    return [s for _, _, s in receiver.received.spans()
            if s.kind == PbSpan.SPAN_KIND_CONSUMER
            and attrs(s).get("messaging.message.id") in task_ids]


def wait_for(fn, timeout: float = 20.0):
    deadline = time.time() + timeout
    value = fn()
    while not value and time.time() < deadline:
        time.sleep(0.05)
        value = fn()
    return value


def run_tasks(tasks, queue: str, n: int) -> set:
    results = [tasks.add.apply_async((i, i), queue=queue) for i in range(n)]
    assert [r.get(timeout=RESULT_TIMEOUT) for r in results] == [2 * i for i in range(n)]
    return {r.id for r in results}


def test_children_recycled_by_max_tasks_per_child_lose_no_span(tasks, start_worker):
    with OtlpHttpReceiver() as receiver:
        worker = start_worker(receiver, args=("--max-tasks-per-child=1",),
                              schedule_delay_ms=LONG_DELAY)
        first_children = set(worker.child_pids())
        ids = run_tasks(tasks, worker.queue, 8)
        # Each child ran one task and exited (recycled); only the flush on its way out can
        # have exported its span, long before the batch delay.
        got = wait_for(lambda: len(consumer_spans(receiver, ids)) == 8 or None)
        assert got, f"{len(consumer_spans(receiver, ids))} of 8 spans:\n{worker.log()}"
        assert not first_children & set(worker.child_pids()), "children were not recycled"
        assert all(attrs(s)["celery.state"] == "SUCCESS" for s in consumer_spans(receiver, ids))


@pytest.mark.parametrize("how", ["sigterm", "remote_shutdown"])
def test_warm_shutdown_loses_no_span(tasks, start_worker, how):
    with OtlpHttpReceiver() as receiver:
        worker = start_worker(receiver, schedule_delay_ms=LONG_DELAY)
        ids = run_tasks(tasks, worker.queue, 6)
        time.sleep(0.3)
        assert not consumer_spans(receiver, ids), "exported before shutdown: test is moot"
        if how == "sigterm":
            worker.stop(signal.SIGTERM)
        else:
            tasks.app.control.shutdown(destination=[worker.name])
            worker.process.wait(60)
        assert len(consumer_spans(receiver, ids)) == 6, worker.log()


def test_warm_shutdown_does_not_wait_to_retry_a_failing_collector(tasks, start_worker):
    # Every export is answered "503 retry later": the processes' flushes on the way out try
    # each batch once, rather than retrying until the flush timeout.
    with OtlpHttpReceiver(responses=[503] * 1000) as receiver:
        worker = start_worker(receiver, schedule_delay_ms=LONG_DELAY)
        run_tasks(tasks, worker.queue, 4)
        worker.stop(signal.SIGTERM)
        assert receiver.attempts >= 1
    log = worker.log()
    assert "(1 attempt; not retried: the process is exiting)" in log, log
    assert "within the export timeout" not in log, log


def test_task_running_at_sigterm_finishes_and_is_exported(tasks, start_worker):
    with OtlpHttpReceiver() as receiver:
        worker = start_worker(receiver, schedule_delay_ms=LONG_DELAY)
        result = tasks.sleep_for.apply_async((1.5,), queue=worker.queue)
        assert wait_for(lambda: "sleep_for[" in worker.log()), worker.log()
        worker.stop(signal.SIGTERM)
        assert result.get(timeout=RESULT_TIMEOUT) == 1.5
        [run] = consumer_spans(receiver, {result.id})
        assert attrs(run)["celery.state"] == "SUCCESS"


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_solo_and_threads_pools(tasks, start_worker, memory, pool):
    memory.clear()
    tracer = trace.get_tracer("tests.celery")
    with OtlpHttpReceiver() as receiver:
        worker = start_worker(receiver, pool=pool, concurrency=2, schedule_delay_ms=LONG_DELAY)
        with tracer.start_as_current_span("request") as root:
            result = tasks.enqueue_child.apply_async((1,), queue=worker.queue)
        child = tasks.app.AsyncResult(result.get(timeout=RESULT_TIMEOUT))
        assert child.get(timeout=RESULT_TIMEOUT) == 2
        worker.stop(signal.SIGTERM)
        trace_id = root.get_span_context().trace_id
        spans = [s for _, _, s in receiver.received.spans()
                 if int.from_bytes(s.trace_id, "big") == trace_id]
        assert sorted(s.name for s in spans) == [
            "process djtrace_test_tasks.add", "process djtrace_test_tasks.enqueue_child",
            "send djtrace_test_tasks.add"]
        [producer] = [s for s in memory.get_finished_spans()
                      if s.name == "send djtrace_test_tasks.enqueue_child"]
        run = next(s for s in spans if s.name.endswith("enqueue_child"))
        assert int.from_bytes(run.parent_span_id, "big") == producer.context.span_id


def test_beat_sends_are_roots_of_their_own_traces(tmp_path, redis_server, tasks):
    with OtlpHttpReceiver() as receiver:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")]
            ),
            "DJTRACE_TEST_BROKER": BROKER,
            "DJTRACE_TEST_BEAT_QUEUE": f"beat-{uuid.uuid4().hex[:8]}",
            "OTEL_SERVICE_NAME": "celery-beat",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": str(LONG_DELAY),
        }
        log = tmp_path / "beat.log"
        with open(log, "wb") as out:
            beat = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "djtrace_test_tasks", "beat",
                 "-s", str(tmp_path / "schedule"), "--loglevel=DEBUG"],
                env=env, cwd=HERE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                assert wait_for(lambda: log.read_text().count("Sending due task") >= 3, 30), \
                    log.read_text()
            finally:
                beat.send_signal(signal.SIGTERM)
                beat.wait(30)
        # Beat logs "Sending due task" before a send and "sent. id->" after it. The SIGTERM can
        # land between the two: before the publish (no send, no span) or after it (a send that
        # completed, and was exported, without its "sent" line). So every logged send has its
        # span, and at most the last due one has a span without a "sent" line.
        text = log.read_text()
        due, sent = text.count("Sending due task"), text.count("sent. id->")
        sends = [s for _, _, s in receiver.received.spans()
                 if s.name == "send djtrace_test_tasks.add"]
        assert sent >= 2, text
        assert sent <= len(sends) <= min(due, sent + 1), text
        assert all(not s.parent_span_id for s in sends)
        assert len({s.trace_id for s in sends}) == len(sends)
        assert all(attrs(s)["djtrace.celery.beat.entry"] == "tick" for s in sends)
        assert all(s.kind == PbSpan.SPAN_KIND_PRODUCER for s in sends)
