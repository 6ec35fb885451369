"""The PRODUCER side: one span per task message sent.

Every way of sending a task (`delay`, `apply_async`, `send_task`, signatures, chains, groups,
chords, retries, beat) ends in the function `AMQP.send_task_message` that
`AMQP._create_task_sender()` builds once per app, with the message already made. Wrapping that
function (through `_create_task_sender`, so apps created later are covered too) gives exactly
one span per message, ended even when publishing raises; the `before/after_task_publish`
signals could not end a span whose publish failed.

The span is not made current while kombu publishes: the broker's own commands are not part of
the application's trace (the Redis integration skips kombu's connections anyway).

Each message sent is also counted, natively, in the statistics of the current local root
(request, task, command) by (task name, call site): one task sent task_send_repeat_threshold
times (default 5) from one line of one root is reported like an N+1, since a group or a bulk
task usually does the same in one message. The root gets `djtrace.celery.send_count`,
`djtrace.celery.repeated_send.count` and one `djtrace.celery.repeated_send` event per such group
(celery.task_name, djtrace.celery.repeated_send.count, code.filepath, code.lineno,
code.function); a warning follows the N+1 warning setting of the Django integration, and strict
mode (task_send_repeat_strict, or n_plus_one_strict) raises RepeatedTaskSendError from the send
that completes the group, after the message has gone. A task run eagerly through apply_async
(task_always_eager, as tests run them) sends no message but is counted the same way, once it
has run, so that tests see what a worker setup would report.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import time
from datetime import datetime
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.trace import Status, StatusCode

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations import _tracing as tr
from djtrace.integrations.celery import _state as st
from djtrace.integrations.celery import arguments

_SUPPRESSED = _suppress.SUPPRESSED
_current_span = tr.current_span
_time = time.time
_W3C_FIELDS = ("traceparent", "tracestate", "baggage")
_W3C_BOTH = tr.TRACECONTEXT | tr.BAGGAGE
_OFF, _NATIVE, _PRODUCER = tr.OFF, tr.NATIVE, tr.OTLP_PRODUCER
_ENQUEUED_AT = st.ENQUEUED_AT
_handle = st.handle
_send_names = st._send_names
_propagation = tr.propagation
_get_context = context_api.get_current
_record_task_send = _native.record_task_send
_DB_MODULE = "djtrace.integrations.django.db"
_EagerResult: Any = None  # celery.result.EagerResult, set by patch()
n_plus_one_logger = logging.getLogger("djtrace.n_plus_one")

#: The beat schedule entry being sent (set by the beat wrapper in lifecycle.py).
beat_entry: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "djtrace_celery_beat_entry", default=None)
_beat_entry_get = beat_entry.get


def _destination(amqp: Any, options: dict) -> str | None:
    queue = options.get("queue")
    if isinstance(queue, str):
        return queue
    name = getattr(queue, "name", None)
    if name:
        return name
    routing_key = options.get("routing_key")
    if routing_key:
        return routing_key
    try:
        return amqp.default_queue.name
    except Exception:  # noqa: BLE001 - a destination is nice to have
        return None


def _countdown(eta: Any) -> float | None:
    try:
        when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        return round(when.timestamp() - _time(), 3)
    except Exception:  # noqa: BLE001
        return None


_SEND_BASE = {st.SYSTEM: "celery", st.OPERATION_TYPE: "send", st.OPERATION_NAME: "send"}
_TASK_NAME, _MESSAGE_ID, _DESTINATION = st.TASK_NAME, st.MESSAGE_ID, st.DESTINATION


def _set_attributes(span: Any, amqp: Any, name: str, headers: dict, body: Any,
                    options: dict) -> None:
    attrs = _SEND_BASE.copy()
    attrs[_TASK_NAME] = name
    task_id = headers.get("id")
    if task_id is None and isinstance(body, dict):  # message protocol 1
        task_id = body.get("id")
    if task_id is not None:
        attrs[_MESSAGE_ID] = task_id if task_id.__class__ is str else str(task_id)
    queue = options.get("queue")
    destination = getattr(queue, "name", None) if queue is not None else None
    if destination is None:
        destination = _destination(amqp, options)
    if destination:
        attrs[_DESTINATION] = destination
    # Rarely set: one lookup each.
    if headers.get("retries"):
        attrs[st.RETRIES] = headers["retries"]
    eta = headers.get("eta")
    if eta:
        attrs[st.ETA] = str(eta)
        countdown = _countdown(eta)
        if countdown is not None:
            attrs[st.COUNTDOWN] = countdown
    if headers.get("expires"):
        attrs[st.EXPIRES] = str(headers["expires"])
    entry = _beat_entry_get()
    if entry is not None:
        attrs[st.BEAT_ENTRY] = entry
    if st.record_args:
        args, kwargs = headers.get("argsrepr"), headers.get("kwargsrepr")
        if args is None and isinstance(body, tuple) and len(body) >= 2:
            args, kwargs = body[0], body[1]
        attrs.update(arguments.attributes(name, args, kwargs, st.args_max_length))
    span.set_attributes(attrs)


def _inject(mode: int, span: Any, headers: dict, options: dict) -> None:
    kind = _propagation()
    if mode == _NATIVE and kind == _W3C_BOTH:
        # The common case, inline: traceparent and tracestate from the span, the baggage only
        # when the context has some.
        t = span._context_tuple()
        headers["traceparent"] = f"00-{t[0]:032x}-{t[1]:016x}-{t[2] & 0xFF:02x}"
        if t[4]:
            headers["tracestate"] = t[4]
        if _get_context().get(_BAGGAGE_KEY):
            tr._baggage_propagator.inject(headers)
        fields = _W3C_FIELDS
    elif mode == _NATIVE and kind != tr.CUSTOM:
        tr.inject_w3c(headers, span, kind)
        fields = _W3C_FIELDS
    else:
        textmap = propagate.get_global_textmap()
        textmap.inject(headers, context=trace_api.set_span_in_context(span))
        fields = tuple(textmap.fields)
    headers[_ENQUEUED_AT] = _time()
    extra = options.get("headers")
    if extra:
        # `headers=` options are merged over the message headers after this point, and a retry
        # passes the headers of the message being retried: ours must win over stale copies.
        merged = dict(extra)
        for key in fields:
            if key in headers:
                merged[key] = headers[key]
            else:
                merged.pop(key, None)
        merged[_ENQUEUED_AT] = headers[_ENQUEUED_AT]
        options["headers"] = merged


def _start(amqp: Any, name: str, message: Any, options: dict) -> tuple:
    mode = _handle.mode()
    if mode == _OFF or _SUPPRESSED.get():
        return None, 0
    headers = message[0]
    span_name = _send_names.get(name) or st.send_name(name)
    if mode == _NATIVE:
        span = _handle._tracer._start_span_native(span_name, _current_span(), _PRODUCER, None,
                                                  None, None, 0)
    else:
        span = _handle.start_generic(span_name, None, _PRODUCER)
    if span.is_recording():
        _set_attributes(span, amqp, name, headers, message[2], options)
    _inject(mode, span, headers, options)
    return span, mode


def _fail(span: Any, exc: BaseException) -> None:
    if span.is_recording():
        span.record_exception(exc, escaped=True)
        span.set_attribute(st.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


class RepeatedTaskSendError(AssertionError):
    """Raised in strict mode at the send that makes one task, sent from one line within one
    root, a repeated send (the message has been sent)."""

    def __init__(self, message: str, finding: dict | None = None) -> None:
        super().__init__(message)
        self.finding = finding


def describe_repeated_send(f: dict) -> str:
    """One human line for a repeated task send finding."""
    from djtrace.integrations._callsite import describe

    return (f"repeated task sends: {f['count']} × {f['task_name']} from {describe(f)}: "
            "use a group or a bulk task")


def _db_settings() -> Any:
    # The Django database integration's resolved settings (N+1 warnings and strict mode), None
    # in a process without it; never imported from here.
    module = sys.modules.get(_DB_MODULE)
    return getattr(module, "_settings", None) if module is not None else None


def _on_repeated_send(finding: dict) -> None:
    db = _db_settings()
    if db is not None and db.warn:
        n_plus_one_logger.warning("djtrace: %s", describe_repeated_send(finding))
    if st.repeat_strict or (db is not None and db.n_plus_one_strict):
        raise RepeatedTaskSendError(describe_repeated_send(finding), finding)


def _count_send(name: str) -> None:
    """Counts the message in the current root; may raise RepeatedTaskSendError (strict)."""
    try:
        finding = _record_task_send(name)  # None at once outside djtrace roots
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task send count")
        return
    if finding is not None:
        _on_repeated_send(finding)


def wrap_sender(send: Any, amqp: Any) -> Any:
    """The traced version of one app's send_task_message."""
    if getattr(send, "__djtrace_wrapped__", None) is not None:
        return send

    def send_task_message(producer, name, message, *args, **options):
        try:
            span, _mode = _start(amqp, name, message, options)
        except Exception:  # noqa: BLE001 - tracing never stops a task from being sent
            tr._report_internal_error("celery producer")
            span = None
        if span is None:
            return send(producer, name, message, *args, **options)
        try:
            result = send(producer, name, message, *args, **options)
        except BaseException as exc:
            _fail(span, exc)
            raise
        span.end()
        _count_send(name)
        return result

    send_task_message.__djtrace_wrapped__ = send
    send_task_message.__wrapped__ = send
    return send_task_message


def wrap_apply_async(apply_async: Any) -> Any:
    """Task.apply_async, counting a task run eagerly (task_always_eager) as the send it stands
    for: a test running tasks eagerly finds the repeated sends a worker setup would report."""

    @functools.wraps(apply_async)
    def traced_apply_async(self, *args, **kwargs):
        result = apply_async(self, *args, **kwargs)
        if isinstance(result, _EagerResult) and _handle.mode() != _OFF and not _SUPPRESSED.get():
            _count_send(self.name)
        return result

    traced_apply_async.__djtrace_wrapped__ = apply_async
    return traced_apply_async


def patch() -> None:
    from celery import _state as celery_state
    from celery.app.amqp import AMQP
    from celery.app.task import Task
    from celery.result import EagerResult

    global _EagerResult
    _EagerResult = EagerResult
    if getattr(Task.apply_async, "__djtrace_wrapped__", None) is None:
        Task.apply_async = wrap_apply_async(Task.apply_async)

    create = AMQP._create_task_sender
    if getattr(create, "__djtrace_wrapped__", None) is None:
        def _create_task_sender(self):
            return wrap_sender(create(self), self)

        _create_task_sender.__djtrace_wrapped__ = create
        AMQP._create_task_sender = _create_task_sender
    # Apps that already built their sender (a task was sent before djtrace was installed).
    for app in list(celery_state._get_active_apps()):
        amqp = app.__dict__.get("amqp")
        if amqp is not None and "send_task_message" in amqp.__dict__:
            amqp.__dict__["send_task_message"] = wrap_sender(
                amqp.__dict__["send_task_message"], amqp)


def unpatch() -> None:
    from celery import _state as celery_state
    from celery.app.amqp import AMQP
    from celery.app.task import Task

    original_apply = getattr(Task.apply_async, "__djtrace_wrapped__", None)
    if original_apply is not None:
        Task.apply_async = original_apply

    original = getattr(AMQP._create_task_sender, "__djtrace_wrapped__", None)
    if original is not None:
        AMQP._create_task_sender = original
    for app in list(celery_state._get_active_apps()):
        amqp = app.__dict__.get("amqp")
        send = amqp.__dict__.get("send_task_message") if amqp is not None else None
        inner = getattr(send, "__djtrace_wrapped__", None)
        if inner is not None:
            amqp.__dict__["send_task_message"] = inner
