"""One trace from a producer span in this process through a real prefork worker (concurrency
2, a separate process tree) and back: parentage across processes, Celery-to-Celery calls,
baggage, canvas, retries, failures, revoked, unknown and time-limited tasks, log correlation."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from opentelemetry import baggage, context, trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus
from opentelemetry.trace import SpanKind

RESULT_TIMEOUT = 30
STATUS_ERROR = PbStatus.STATUS_CODE_ERROR


def as_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def wait_spans(receiver, predicate, count: int = 1, timeout: float = 20.0) -> list:
    deadline = time.time() + timeout
    found: list = []
    while time.time() < deadline:
        found = [s for _, _, s in receiver.received.spans() if predicate(s)]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return found


def in_trace(trace_id: int):
    return lambda s: as_int(s.trace_id) == trace_id


def producer_spans(memory, task_name: str) -> list:
    return [s for s in memory.get_finished_spans()
            if s.kind is SpanKind.PRODUCER and s.attributes.get("celery.task_name") == task_name]


@pytest.fixture
def tracer(memory):
    memory.clear()
    return trace.get_tracer("tests.celery")


def test_producer_span_is_parent_of_worker_consumer_span(tasks, shared_worker, shared_receiver,
                                                         memory, tracer):
    with tracer.start_as_current_span("POST /api/orders/") as root:
        result = tasks.add.apply_async((2, 3), queue=shared_worker.queue)
    assert result.get(timeout=RESULT_TIMEOUT) == 5
    trace_id = root.get_span_context().trace_id

    [producer] = producer_spans(memory, "djtrace_test_tasks.add")
    assert producer.name == "send djtrace_test_tasks.add"
    assert producer.parent.span_id == root.get_span_context().span_id
    assert producer.context.trace_id == trace_id
    assert producer.attributes["messaging.system"] == "celery"
    assert producer.attributes["messaging.operation.type"] == "send"
    assert producer.attributes["messaging.destination.name"] == shared_worker.queue
    assert producer.attributes["messaging.message.id"] == result.id

    [consumer] = wait_spans(shared_receiver, in_trace(trace_id))
    assert consumer.name == "process djtrace_test_tasks.add"
    assert consumer.kind == PbSpan.SPAN_KIND_CONSUMER
    assert as_int(consumer.parent_span_id) == producer.context.span_id
    a = attrs(consumer)
    assert a["messaging.system"] == "celery"
    assert a["messaging.operation.type"] == "process"
    assert a["messaging.message.id"] == result.id
    assert a["messaging.destination.name"] == shared_worker.queue
    assert a["celery.task_name"] == "djtrace_test_tasks.add"
    assert a["celery.state"] == "SUCCESS"
    assert a["celery.retries"] == 0
    assert 0.0 <= a["djtrace.celery.queue_wait_time"] < RESULT_TIMEOUT
    assert "djtrace.celery.args" not in a  # arguments are off by default
    # The worker process exported it: its own resource, not this process's.
    resource = next(r for r, _, s in shared_receiver.received.spans() if s == consumer)
    service = {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"]
    assert service == "celery-worker"


def test_task_enqueuing_another_stays_in_the_trace(tasks, shared_worker, shared_receiver,
                                                   memory, tracer):
    with tracer.start_as_current_span("request") as root:
        result = tasks.enqueue_child.apply_async((41,), queue=shared_worker.queue)
    child_id = result.get(timeout=RESULT_TIMEOUT)
    assert tasks.app.AsyncResult(child_id).get(timeout=RESULT_TIMEOUT) == 42
    trace_id = root.get_span_context().trace_id

    spans = wait_spans(shared_receiver, in_trace(trace_id), count=3)
    by_name = {s.name: s for s in spans}
    parent_run = by_name["process djtrace_test_tasks.enqueue_child"]
    child_send = by_name["send djtrace_test_tasks.add"]
    child_run = by_name["process djtrace_test_tasks.add"]
    assert child_send.kind == PbSpan.SPAN_KIND_PRODUCER
    assert child_send.parent_span_id == parent_run.span_id
    assert child_run.parent_span_id == child_send.span_id
    assert attrs(child_run)["messaging.message.id"] == child_id
    [producer] = producer_spans(memory, "djtrace_test_tasks.enqueue_child")
    assert as_int(parent_run.parent_span_id) == producer.context.span_id


def test_baggage_travels_with_the_message(tasks, shared_worker, shared_receiver, tracer):
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("request") as root:
            result = tasks.read_baggage.apply_async(("tenant",), queue=shared_worker.queue)
    finally:
        context.detach(token)
    assert result.get(timeout=RESULT_TIMEOUT) == "acme"
    [run] = wait_spans(shared_receiver, in_trace(root.get_span_context().trace_id))
    assert attrs(run)["test.baggage"] == "acme"


def test_canvas_one_producer_span_per_message(tasks, shared_worker, shared_receiver, memory,
                                              tracer):
    from celery import chain, group

    with tracer.start_as_current_span("canvas") as root:
        g = group(tasks.add.s(i, i) for i in range(3)).apply_async(queue=shared_worker.queue)
        c = chain(tasks.add.s(1, 2), tasks.add.s(10)).apply_async(queue=shared_worker.queue)
    assert g.get(timeout=RESULT_TIMEOUT) == [0, 2, 4]
    assert c.get(timeout=RESULT_TIMEOUT) == 13
    trace_id = root.get_span_context().trace_id
    # Three group members and the first link of the chain were sent from here...
    local = producer_spans(memory, "djtrace_test_tasks.add")
    assert len(local) == 4
    # ...the chain's second link by the worker, from within the first link's run.
    runs = wait_spans(shared_receiver,
                      lambda s: in_trace(trace_id)(s) and s.kind == PbSpan.SPAN_KIND_CONSUMER,
                      count=5)
    assert len(runs) == 5
    sends = [s for _, _, s in shared_receiver.received.spans()
             if in_trace(trace_id)(s) and s.kind == PbSpan.SPAN_KIND_PRODUCER]
    assert len(sends) == 1
    send_ids = {p.context.span_id for p in local} | {as_int(s.span_id) for s in sends}
    assert {as_int(r.parent_span_id) for r in runs} == send_ids


def test_retry_is_recorded_and_the_retry_stays_in_the_trace(tasks, shared_worker,
                                                             shared_receiver, tracer):
    with tracer.start_as_current_span("request") as root:
        result = tasks.retry_once.apply_async(queue=shared_worker.queue)
    assert result.get(timeout=RESULT_TIMEOUT) == 1
    trace_id = root.get_span_context().trace_id
    runs = wait_spans(shared_receiver,
                      lambda s: in_trace(trace_id)(s) and s.kind == PbSpan.SPAN_KIND_CONSUMER,
                      count=2)
    first = next(s for s in runs if attrs(s)["celery.retries"] == 0)
    second = next(s for s in runs if attrs(s)["celery.retries"] == 1)
    assert attrs(first)["celery.state"] == "RETRY"
    assert "first attempt fails" in attrs(first)["celery.retry.reason"]
    assert [e.name for e in first.events] == ["celery.retry"]
    assert first.status.code != STATUS_ERROR
    assert attrs(second)["celery.state"] == "SUCCESS"
    [resend] = [s for _, _, s in shared_receiver.received.spans()
                if in_trace(trace_id)(s) and s.kind == PbSpan.SPAN_KIND_PRODUCER]
    assert resend.parent_span_id == first.span_id
    assert attrs(resend)["celery.retries"] == 1
    assert second.parent_span_id == resend.span_id


def test_failure_sets_error_status_and_exception_event(tasks, shared_worker, shared_receiver,
                                                       tracer):
    with tracer.start_as_current_span("request") as root:
        result = tasks.fail.apply_async(("card declined",), queue=shared_worker.queue)
    with pytest.raises(RuntimeError):
        result.get(timeout=RESULT_TIMEOUT)
    [run] = wait_spans(shared_receiver, in_trace(root.get_span_context().trace_id))
    assert run.status.code == STATUS_ERROR
    assert "card declined" in run.status.message
    a = attrs(run)
    assert a["celery.state"] == "FAILURE"
    assert a["error.type"] == "RuntimeError"
    [event] = [e for e in run.events if e.name == "exception"]
    event_attrs = {kv.key: kv.value.string_value for kv in event.attributes}
    assert event_attrs["exception.type"] == "RuntimeError"
    assert event_attrs["exception.message"] == "card declined"
    assert "raise RuntimeError(message)" in event_attrs["exception.stacktrace"]


def test_expired_task_is_recorded_as_revoked(tasks, shared_worker, shared_receiver, tracer):
    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    with tracer.start_as_current_span("request") as root:
        tasks.add.apply_async((1, 1), queue=shared_worker.queue, expires=past)
    [run] = wait_spans(shared_receiver, in_trace(root.get_span_context().trace_id))
    a = attrs(run)
    assert run.name == "process djtrace_test_tasks.add"
    assert a["celery.state"] == "REVOKED"
    assert a["celery.revoked.reason"] == "expired"
    assert [e.name for e in run.events] == ["celery.revoked"]


def _start_and_terminate(tasks, worker, tracer, signal_name: str):
    with tracer.start_as_current_span("request") as root:
        result = tasks.sleep_for.apply_async((30,), queue=worker.queue)
    inspect = tasks.app.control.inspect(destination=[worker.name], timeout=1)
    deadline = time.time() + 20
    while time.time() < deadline:
        active = (inspect.active() or {}).get(worker.name) or []
        if any(t.get("id") == result.id for t in active):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the task did not start")
    tasks.app.control.revoke(result.id, terminate=True, signal=signal_name)
    return in_trace(root.get_span_context().trace_id)


def test_task_terminated_with_sigterm_has_one_span(tasks, shared_worker, shared_receiver,
                                                   tracer):
    """The child gets SystemExit and its span records it; the worker adds no second span."""
    in_root = _start_and_terminate(tasks, shared_worker, tracer, "SIGTERM")
    [run] = wait_spans(shared_receiver, in_root)
    time.sleep(1.5)  # what the worker's main process would record comes after the child's end
    assert len(wait_spans(shared_receiver, in_root, count=2, timeout=0.1)) == 1
    a = attrs(run)
    assert run.name == "process djtrace_test_tasks.sleep_for"
    assert a["celery.state"] == "INTERRUPTED"
    assert a["error.type"] == "SystemExit"
    assert run.status.code == STATUS_ERROR


def test_task_killed_by_revoke_is_recorded_by_the_worker(tasks, shared_worker, shared_receiver,
                                                         tracer):
    """SIGKILL leaves the child no chance to end its span: the worker's main process does."""
    in_root = _start_and_terminate(tasks, shared_worker, tracer, "SIGKILL")
    [run] = wait_spans(shared_receiver, in_root)
    time.sleep(1.5)
    assert len(wait_spans(shared_receiver, in_root, count=2, timeout=0.1)) == 1
    a = attrs(run)
    assert run.name == "process djtrace_test_tasks.sleep_for"
    assert a["celery.state"] == "REVOKED"
    assert a["celery.revoked.reason"] == "terminated"
    assert a["celery.terminated.signal"] == "9"
    assert [e.name for e in run.events] == ["celery.revoked"]


def test_unknown_task_is_recorded_as_rejected(tasks, shared_worker, shared_receiver, tracer):
    with tracer.start_as_current_span("request") as root:
        tasks.app.send_task("djtrace_test_tasks.no_such_task", queue=shared_worker.queue)
    [run] = wait_spans(shared_receiver, in_trace(root.get_span_context().trace_id))
    assert run.name == "process djtrace_test_tasks.no_such_task"
    assert attrs(run)["celery.state"] == "REJECTED"
    assert run.status.code == STATUS_ERROR


def test_time_limits_are_recorded(tasks, shared_worker, shared_receiver, tracer):
    with tracer.start_as_current_span("soft") as soft_root:
        soft = tasks.sleep_for.apply_async((5,), queue=shared_worker.queue,
                                           soft_time_limit=0.5)
    with tracer.start_as_current_span("hard") as hard_root:
        hard = tasks.sleep_for.apply_async((5,), queue=shared_worker.queue, time_limit=1)
    with pytest.raises(SoftTimeLimitExceeded):
        soft.get(timeout=RESULT_TIMEOUT)
    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=RESULT_TIMEOUT)

    [soft_run] = wait_spans(shared_receiver, in_trace(soft_root.get_span_context().trace_id))
    a = attrs(soft_run)
    assert a["djtrace.celery.time_limit_exceeded"] == "soft"
    assert a["celery.state"] == "FAILURE"
    assert soft_run.status.code == STATUS_ERROR

    # The child running the task is killed: the worker's main process records the outcome.
    hard_runs = wait_spans(shared_receiver,
                           lambda s: in_trace(hard_root.get_span_context().trace_id)(s)
                           and attrs(s).get("djtrace.celery.time_limit_exceeded") == "hard")
    assert hard_runs, [s.name for _, _, s in shared_receiver.received.spans()]
    hard_run = hard_runs[0]
    assert attrs(hard_run)["error.type"] == "TimeLimitExceeded"
    assert hard_run.status.code == STATUS_ERROR
    assert hard_run.end_time_unix_nano - hard_run.start_time_unix_nano >= 0.9e9


def test_worker_log_lines_carry_the_trace_id_the_receiver_saw(tasks, shared_worker,
                                                              shared_receiver, tracer):
    with tracer.start_as_current_span("request"):
        result = tasks.log_line.apply_async(("hello-from-test",), queue=shared_worker.queue)
    assert result.get(timeout=RESULT_TIMEOUT) == "hello-from-test"
    [run] = wait_spans(shared_receiver,
                       lambda s: attrs(s).get("messaging.message.id") == result.id)
    trace_hex, span_hex = run.trace_id.hex(), run.span_id.hex()
    deadline = time.time() + 10
    while time.time() < deadline and "hello-from-test" not in shared_worker.log():
        time.sleep(0.05)
    lines = [line for line in shared_worker.log().splitlines() if "hello-from-test" in line]
    task_line = next(line for line in lines if "task log line" in line)
    assert f"trace_id={trace_hex} span_id={span_hex}" in task_line
    # Celery's own "succeeded" line is logged inside the task's span too.
    succeeded = [line for line in shared_worker.log().splitlines()
                 if result.id in line and "succeeded" in line]
    assert succeeded and re.search(rf"trace_id={trace_hex}\b", succeeded[0])
