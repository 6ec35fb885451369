"""The CONSUMER side: one span per task run, continuing the producer's trace.

`task_prerun` starts the span with the producer span (from the message's W3C headers) as its
remote parent, makes it current (with the message's baggage) for everything the task does, and
keeps it on the task's request object; `task_postrun` (always sent, from a `finally`) records
the outcome and ends it. A task run eagerly, with no headers, becomes a child of the current
span, with query statistics of its own (N+1s are looked for per task, as in a worker).

Outcomes that happen outside the process running the task get a span of their own, in the same
trace, from the worker's main process: a message revoked or expired before it ran, a message
rejected as unknown or invalid, and a hard time limit (the pool kills the child running it).
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations import _tracing as tr
from djtrace.integrations.celery import _state as st
from djtrace.integrations.celery import arguments

_SUPPRESSED = _suppress.SUPPRESSED
_time = time.time
_handle = st.handle
_process_names = st._process_names
_propagation = tr.propagation
_parse_traceparent = _native.parse_traceparent
_normalize_tracestate = _native.normalize_tracestate
_current_span = tr.current_span
_attach = context_api.attach
_modules = sys.modules
_OFF, _NATIVE, _CONSUMER, _BAGGAGE = tr.OFF, tr.NATIVE, tr.OTLP_CONSUMER, tr.BAGGAGE
_ATTACH_END = tr.ATTACH | tr.END_ON_EXIT
_KEY = "_djtrace_span"  # where the running span is kept on the task's request (Context)
_DB_MODULE = "djtrace.integrations.django.db"

FAILURE = "FAILURE"
RETRY = "RETRY"
REJECTED = "REJECTED"


def _begin_local_root(span: Any) -> None:
    # Extension point for per-task query statistics (the Django database integration may
    # provide it); looked up each time so that import order does not matter, and never imported
    # from here (a worker without Django must not import it).
    module = sys.modules.get(_DB_MODULE)
    if module is None:
        return
    begin = getattr(module, "begin_local_root", None)
    if begin is not None:
        try:
            begin(span)
        except Exception:  # noqa: BLE001
            tr._report_internal_error("begin_local_root")


def _base_attributes(task_name: str, task_id: Any, request: dict) -> dict:
    attrs = {
        st.SYSTEM: "celery",
        st.OPERATION_TYPE: "process",
        st.OPERATION_NAME: "process",
        st.TASK_NAME: task_name,
        st.RETRIES: request.get("retries") or 0,
    }
    if task_id is not None:
        attrs[st.MESSAGE_ID] = str(task_id)
    delivery = request.get("delivery_info")
    if delivery:
        destination = delivery.get("routing_key") or delivery.get("exchange")
        if destination:
            attrs[st.DESTINATION] = destination
    eta = request.get("eta")
    if eta:
        attrs[st.ETA] = str(eta)
    return attrs


_PROCESS_BASE = {st.SYSTEM: "celery", st.OPERATION_TYPE: "process",
                 st.OPERATION_NAME: "process"}
_TASK_NAME, _MESSAGE_ID, _DESTINATION, _RETRIES = (st.TASK_NAME, st.MESSAGE_ID,
                                                   st.DESTINATION, st.RETRIES)
_ENQUEUED_AT, _QUEUE_WAIT = st.ENQUEUED_AT, st.QUEUE_WAIT


def _run_attributes(task_name: str, task_id: Any, request: dict, args: Any,
                    kwargs: Any) -> dict:
    attrs = _PROCESS_BASE.copy()
    attrs[_TASK_NAME] = task_name
    attrs[_RETRIES] = request.get("retries") or 0
    if task_id is not None:
        attrs[_MESSAGE_ID] = task_id if task_id.__class__ is str else str(task_id)
    delivery = request.get("delivery_info")
    if delivery:
        destination = delivery.get("routing_key") or delivery.get("exchange")
        if destination:
            attrs[_DESTINATION] = destination
    enqueued = request.get(_ENQUEUED_AT)
    if enqueued.__class__ is float:
        wait = _time() - enqueued
        attrs[_QUEUE_WAIT] = wait if wait > 0.0 else 0.0
    if request.get("eta"):
        attrs[st.ETA] = str(request["eta"])
    if st.record_args:
        shown_args = request.get("argsrepr")
        shown_kwargs = request.get("kwargsrepr")
        attrs.update(arguments.attributes(
            task_name, args if shown_args is None else shown_args,
            kwargs if shown_kwargs is None else shown_kwargs, st.args_max_length))
    return attrs


def _start_generic(name: str, request: dict) -> tuple:
    """(span, context token, local root?) through the public API and the global propagator."""
    # Based on the current context: with no parent in the headers (a task run eagerly), the
    # current span stays the parent.
    extracted = propagate.extract(request)
    parent = trace_api.get_current_span(extracted).get_span_context()
    local_root = not parent.is_valid or parent.is_remote
    span = st.handle.start_generic(name, extracted, tr.OTLP_CONSUMER)
    token = context_api.attach(trace_api.set_span_in_context(span, extracted))
    return span, token, local_root


def on_prerun(sender: Any = None, task_id: Any = None, task: Any = None, args: Any = None,
              kwargs: Any = None, **_: Any) -> None:
    mode = _handle.mode()
    if mode == _OFF or task is None or _SUPPRESSED.get():
        return
    try:
        request = task.request.__dict__
        task_name = task.name
        name = _process_names.get(task_name) or st.process_name(task_name)
        kind = _propagation()
        if mode == _NATIVE and kind != tr.CUSTOM:
            traceparent = request.get("traceparent")
            parent = _parse_traceparent(traceparent) if traceparent.__class__ is str else None
            if parent is not None:
                state = request.get("tracestate")
                parent = (parent[0], parent[1], parent[2], True,
                          (_normalize_tracestate(state) or "") if state.__class__ is str else "")
                local_root = True
            else:  # run eagerly, or sent untraced: a child of the current span, if any
                parent = _current_span()
                local_root = parent is None
            span = _handle._tracer._start_span_native(name, parent, _CONSUMER, None, None, None,
                                                      _ATTACH_END)
            baggage = request.get("baggage") if kind & _BAGGAGE else None
            token = _attach(tr.baggage_context(baggage)) if baggage else None
            span.__enter__()
            request[_KEY] = (span, token, True)
        else:
            span, token, local_root = _start_generic(name, request)
            request[_KEY] = (span, token, False)
        if span.is_recording():
            span.set_attributes(_run_attributes(task_name, task_id, request, args, kwargs))
        # A task run eagerly (task_always_eager, apply()) is a child of the current span but
        # gets statistics of its own, as it would in a worker: otherwise a loop of eager sends
        # puts one query per task in the caller's root, where it looks like an N+1.
        if (local_root or request.get("is_eager")) and _DB_MODULE in _modules:
            _begin_local_root(span)
    except Exception:  # noqa: BLE001 - tracing never stops a task from running
        tr._report_internal_error("celery task_prerun")


def _exception_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _record_outcome(span: Any, state: Any, retval: Any) -> None:
    span.set_attribute(st.STATE, state or "INTERRUPTED")
    if state == FAILURE and isinstance(retval, BaseException):
        _record_failure(span, retval)
    elif state == RETRY:
        reason = getattr(retval, "exc", None) or getattr(retval, "message", None) or retval
        text = str(reason)[:1024]
        span.set_attribute(st.RETRY_REASON, text)
        event = {st.RETRY_REASON: text}
        when = getattr(retval, "when", None)
        if when is not None:
            event["celery.retry.when"] = str(when)
        span.add_event("celery.retry", event)
    elif state == REJECTED:
        requeue = bool(getattr(retval, "requeue", False))
        span.set_attribute(st.REJECT_REQUEUE, requeue)
        span.add_event("celery.rejected", {"celery.reject.reason": str(
            getattr(retval, "reason", retval))[:1024], st.REJECT_REQUEUE: requeue})
    elif state is None:
        # A BaseException (SystemExit on a worker's shutdown or a time limit, ...) is leaving
        # the task; postrun runs in the `finally` it passes through.
        exc = sys.exc_info()[1]
        if exc is not None:
            _record_failure(span, exc)
        else:
            span.set_status(Status(StatusCode.ERROR, "task interrupted"))


def _record_failure(span: Any, exc: BaseException) -> None:
    from billiard.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        span.set_attribute(st.TIME_LIMIT, "soft")
    span.record_exception(exc, escaped=True)
    span.set_attribute(st.ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, _exception_text(exc)))


def on_postrun(sender: Any = None, task_id: Any = None, task: Any = None, retval: Any = None,
               state: Any = None, **_: Any) -> None:
    if task is None:
        return
    try:
        entry = task.request.__dict__.pop(_KEY, None)
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task_postrun")
        return
    if entry is None:
        return
    span, token, native = entry
    try:
        if span.is_recording():
            _record_outcome(span, state, retval)
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task outcome")
    finally:
        try:
            if native:
                span.__exit__(None, None, None)  # detaches and ends
                if token is not None:
                    context_api.detach(token)
            else:
                context_api.detach(token)
                span.end()
        except Exception:  # noqa: BLE001
            tr._report_internal_error("celery task end")


# ---------------------------------------------------------------------------------------------
# Outcomes decided by the worker's main process

def outcome_span(task_name: str, task_id: Any, request: dict, state: str,
                 attributes: dict | None = None, exc: BaseException | None = None,
                 event: tuple | None = None, error: str | None = None,
                 started: float | None = None) -> None:
    """Records, as a CONSUMER span of its own in the message's trace, an outcome that no task
    run recorded: `request` is the message's headers (or request dict)."""
    mode = st.handle.mode()
    if mode == tr.OFF:
        return
    name = st.process_name(task_name)
    start_ns = int(started * 1e9) if started else None
    kind = tr.propagation()
    if mode == tr.NATIVE and kind != tr.CUSTOM:
        parent = tr.parse_parent(request.get("traceparent"), request.get("tracestate"))
        span = st.handle.tracer._start_span_native(name, parent, tr.OTLP_CONSUMER, None, None,
                                                   start_ns, 0)
    else:
        context = propagate.extract(request, context_api.Context())
        span = st.handle.tracer.start_span(name, context=context,
                                           kind=tr._API_KINDS[tr.OTLP_CONSUMER],
                                           start_time=start_ns)
    if span.is_recording():
        attrs = _base_attributes(task_name, task_id, request)
        attrs[st.STATE] = state
        if attributes:
            attrs.update(attributes)
        span.set_attributes(attrs)
        if event is not None:
            span.add_event(event[0], event[1])
        if exc is not None:
            span.record_exception(exc, escaped=True)
            span.set_attribute(st.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, _exception_text(exc)))
        elif error is not None:
            span.set_attribute(st.ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def _is_sigterm(signum: Any) -> bool:
    if isinstance(signum, str):
        name = signum.strip().upper()
        return name in ("SIGTERM", "TERM", str(int(signal.SIGTERM)))
    return signum == signal.SIGTERM


def on_revoked(sender: Any = None, request: Any = None, terminated: Any = False,
               signum: Any = None, expired: Any = False, **_: Any) -> None:
    # revoke(terminate=True) with SIGTERM: the child running the task gets SystemExit, and the
    # task's own span there records the interruption, with the work done before it. A second
    # span here would count the one run twice. Other signals kill the child silently.
    if terminated and _is_sigterm(signum):
        return
    try:
        data = request.__dict__ if request is not None else {}
        task_name = getattr(sender, "name", None) or data.get("task") or "unknown"
        reason = "expired" if expired else ("terminated" if terminated else "revoked")
        attrs: dict = {st.REVOKED_REASON: reason}
        if terminated and signum is not None:
            attrs[st.TERMINATED_SIGNAL] = str(signum)
        outcome_span(task_name, data.get("id"), data, "REVOKED", attrs,
                     event=("celery.revoked", {st.REVOKED_REASON: reason}))
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task_revoked")


def on_rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    try:
        headers = getattr(message, "headers", None) or {}
        task_name = headers.get("task") or "unknown"
        outcome_span(task_name, headers.get("id"), headers, REJECTED,
                     exc=exc if isinstance(exc, BaseException) else None,
                     error=None if isinstance(exc, BaseException) else "unknown message")
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task_rejected")


def on_unknown(sender: Any = None, message: Any = None, exc: Any = None, name: Any = None,
               id: Any = None, **_: Any) -> None:  # noqa: A002 - the signal's argument name
    try:
        headers = getattr(message, "headers", None) or {}
        outcome_span(name or headers.get("task") or "unknown", id or headers.get("id"), headers,
                     REJECTED, exc=exc if isinstance(exc, BaseException) else None,
                     error=None if isinstance(exc, BaseException) else "NotRegistered")
    except Exception:  # noqa: BLE001
        tr._report_internal_error("celery task_unknown")


def _on_hard_time_limit(request: Any, timeout: Any) -> None:
    from billiard.exceptions import TimeLimitExceeded

    data = request.request_dict
    started = None
    time_start = getattr(request, "time_start", None)
    if time_start:
        # Wall-clock time in recent Celery; older releases kept billiard's monotonic reading,
        # which is far below any plausible epoch time.
        started = time_start if time_start > 1e9 else (
            _time() - max(time.monotonic() - time_start, 0.0))
    outcome_span(request.name, request.id, data, FAILURE, {st.TIME_LIMIT: "hard"},
                 exc=TimeLimitExceeded(timeout), started=started)


def patch_request() -> None:
    from celery.worker.request import Request

    on_timeout = Request.on_timeout
    if getattr(on_timeout, "__djtrace_wrapped__", None) is not None:
        return

    def traced_on_timeout(self, soft, timeout):
        result = on_timeout(self, soft, timeout)
        if not soft:
            try:
                _on_hard_time_limit(self, timeout)
            except Exception:  # noqa: BLE001
                tr._report_internal_error("celery hard time limit")
        return result

    traced_on_timeout.__djtrace_wrapped__ = on_timeout
    Request.on_timeout = traced_on_timeout


def unpatch_request() -> None:
    from celery.worker.request import Request

    original = getattr(Request.on_timeout, "__djtrace_wrapped__", None)
    if original is not None:
        Request.on_timeout = original
