"""Celery: a PRODUCER span per task message, a CONSUMER span per task run, one trace across
processes and machines (W3C `traceparent`, `tracestate` and `baggage` in the message headers),
and worker/beat lifecycles that lose no finished span, with no hook in the application.

`install()` is all a process needs (Django's app config calls it when Celery is importable;
outside Django, `djtrace.celery.instrument(app)`). It is idempotent and works for every Celery
app of the process, created before or after it.

Spans
    send <task name>      PRODUCER, child of the current span (a root when there is none, as
                          for beat's sends)
    process <task name>   CONSUMER, child of the producer span, current while the task runs

The messaging conventions name spans "{operation} {destination}"; with Celery the destination
(`messaging.destination.name`) is nearly always the one queue "celery", so the task name stands
in its place in the span name, where it tells the spans apart.

Attributes: messaging.system="celery", messaging.operation.type/.name ("send" / "process"),
messaging.destination.name (queue or routing key), messaging.message.id (task id),
celery.task_name, celery.retries, celery.eta, celery.countdown (seconds from send to the eta),
celery.expires, celery.state (SUCCESS, FAILURE, RETRY, REJECTED, IGNORED, REVOKED,
INTERRUPTED), celery.retry.reason, celery.revoked.reason, celery.terminated.signal, error.type,
djtrace.celery.queue_wait_time (seconds from send to start, from the `djtrace_enqueued_at`
header added on send), djtrace.celery.time_limit_exceeded ("soft" / "hard"),
djtrace.celery.reject.requeue, djtrace.celery.beat.entry, and, only when enabled,
djtrace.celery.args / djtrace.celery.kwargs (see arguments.py).

Events: "celery.retry", "celery.rejected", "celery.revoked", "exception" (failures: status
ERROR).

A task run that cannot end its own span is recorded by the worker's main process: revoked or
expired before it ran, rejected, unknown, killed by the hard time limit or by
`revoke(terminate=True, signal="SIGKILL")` (state REVOKED, celery.terminated.signal). With
SIGTERM, the default, the child gets SystemExit and the task's own span records it
(INTERRUPTED), once.

Repeated task sends: the task messages sent within one local root (request, task, command) are
counted by (task name, call site). When one task is sent task_send_repeat_threshold times from
one line, as a loop does, the root span gets a "djtrace.celery.repeated_send" event
(celery.task_name, djtrace.celery.repeated_send.count, code.filepath, code.lineno,
code.function), reported like an N+1: a group or a bulk task would send one message. Roots
that sent tasks also carry djtrace.celery.send_count and djtrace.celery.repeated_send.count
(groups found). Warnings follow n_plus_one_warn, the djtrace.testing N+1 helpers fail on them,
and strict mode raises RepeatedTaskSendError at the send that completes one (see producer.py).

DJTRACE keys (also DJTRACE_<KEY> environment variables):
    celery_task_args             False  record task arguments (as bounded strings)
    celery_task_args_max_length  1024   characters per argument attribute
    celery_flush_timeout_ms      5000   bound of the flush when a worker process exits
    task_send_repeat_threshold   5      sends of one task from one call site within one root
                                        that make a repeated send (0: off; 1 is refused)
    task_send_repeat_strict      False  raise RepeatedTaskSendError at the send that
                                        completes one (test suites; n_plus_one_strict does too)
"""

from __future__ import annotations

import threading

from djtrace.integrations.celery import _state

__all__ = ["install", "uninstall", "is_installed"]

_lock = threading.Lock()
_installed = False
_RECEIVERS = (
    ("task_prerun", "consumer", "on_prerun"),
    ("task_postrun", "consumer", "on_postrun"),
    ("task_revoked", "consumer", "on_revoked"),
    ("task_rejected", "consumer", "on_rejected"),
    ("task_unknown", "consumer", "on_unknown"),
    ("worker_process_shutdown", "lifecycle", "flush"),
    ("worker_shutdown", "lifecycle", "flush"),
)


def is_installed() -> bool:
    return _installed


def install() -> bool:
    """Instruments Celery in this process. False when Celery is not importable; True once
    installed (a second call does nothing)."""
    global _installed
    try:
        import celery  # noqa: F401
        from celery import signals
    except ImportError:
        return False
    with _lock:
        if _installed:
            return True
        from djtrace.integrations.celery import consumer, lifecycle, producer

        _state.load_settings()
        modules = {"consumer": consumer, "lifecycle": lifecycle}
        for signal_name, module, func in _RECEIVERS:
            getattr(signals, signal_name).connect(
                getattr(modules[module], func), weak=False, dispatch_uid=f"djtrace.{signal_name}")
        producer.patch()
        consumer.patch_request()
        lifecycle.patch_beat()
        _installed = True
        return True


def uninstall() -> None:
    """Removes every hook install() added (tests and benchmarks)."""
    global _installed
    with _lock:
        if not _installed:
            return
        from celery import signals

        from djtrace.integrations.celery import consumer, lifecycle, producer

        modules = {"consumer": consumer, "lifecycle": lifecycle}
        for signal_name, module, func in _RECEIVERS:
            getattr(signals, signal_name).disconnect(
                getattr(modules[module], func), dispatch_uid=f"djtrace.{signal_name}")
        producer.unpatch()
        consumer.unpatch_request()
        lifecycle.unpatch_beat()
        _installed = False
