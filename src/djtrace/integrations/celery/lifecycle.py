"""Worker and beat lifecycle: no finished span is lost when a process ends, and no hook is
needed in the application.

- A prefork child (billiard) leaves with `os._exit`, so atexit handlers never run in it: when
  it is recycled (max_tasks_per_child, max_memory_per_child), shrunk, or told to stop (warm
  shutdown, SIGTERM), it sends `worker_process_shutdown` from its exit path first, and the
  provider is flushed there. Nothing is flushed after each task: spans leave through the batch
  processor as usual, and only an exiting child pays for one flush.
- The main process (solo and threads pools run tasks there) flushes on `worker_shutdown`, before
  the interpreter's own exit handlers.
- Beat: every scheduled send starts from an empty context, so it is the root of its own trace,
  and names its schedule entry; an embedded beat process (`worker -B`) also leaves with
  `os._exit`, so the provider is flushed when beat stops.

Fork safety itself is native (the batch processor is reset in a child after fork).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api

from djtrace.integrations import _tracing as tr
from djtrace.integrations.celery import _state as st
from djtrace.integrations.celery import producer


def flush(**_: Any) -> bool:
    """Exports every finished span now, as the process exits (within
    `celery_flush_timeout_ms`)."""
    return tr.flush_before_exit(st.flush_timeout_ms, "celery flush")


def patch_beat() -> None:
    from celery import beat

    apply_async = beat.Scheduler.apply_async
    if getattr(apply_async, "__djtrace_wrapped__", None) is None:
        def traced_apply_async(self, entry, *args, **kwargs):
            token = context_api.attach(context_api.Context())
            entry_token = producer.beat_entry.set(getattr(entry, "name", None) or "")
            try:
                return apply_async(self, entry, *args, **kwargs)
            finally:
                producer.beat_entry.reset(entry_token)
                context_api.detach(token)

        traced_apply_async.__djtrace_wrapped__ = apply_async
        beat.Scheduler.apply_async = traced_apply_async

    sync = beat.Service.sync
    if getattr(sync, "__djtrace_wrapped__", None) is None:
        def traced_sync(self, *args, **kwargs):
            try:
                return sync(self, *args, **kwargs)
            finally:
                flush()

        traced_sync.__djtrace_wrapped__ = sync
        beat.Service.sync = traced_sync


def unpatch_beat() -> None:
    from celery import beat

    for owner, name in ((beat.Scheduler, "apply_async"), (beat.Service, "sync")):
        original = getattr(getattr(owner, name), "__djtrace_wrapped__", None)
        if original is not None:
            setattr(owner, name, original)
