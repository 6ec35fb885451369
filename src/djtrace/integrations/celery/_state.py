"""State shared by the producer, consumer and lifecycle hooks: the tracer handle, the settings
in force (plain globals for the hot paths) and the attribute names."""

from __future__ import annotations

from typing import Any

from djtrace._version import __version__
from djtrace.config import ConfigError
from djtrace.integrations import _settings
from djtrace.integrations._tracing import TracerHandle

handle = TracerHandle("djtrace.integrations.celery", __version__)

# DJTRACE keys of this integration (see docs in djtrace/integrations/celery/__init__.py).
_settings.define("celery_task_args", False, _settings.parse_bool)
_settings.define("celery_task_args_max_length", 1024, _settings.parse_non_negative_int)
_settings.define("celery_flush_timeout_ms", 5000, _settings.parse_non_negative_int)


def _parse_threshold(name: str, raw: Any) -> int:
    # 1 would flag every task sent: like n_plus_one_threshold, it is refused.
    value = _settings.parse_non_negative_int(name, raw)
    if value == 1:
        raise ConfigError(f"{name} must be 0 (off) or at least 2, got {raw!r}")
    return value


_settings.define("task_send_repeat_threshold", 5, _parse_threshold)
_settings.define("task_send_repeat_strict", False, _settings.parse_bool)

record_args = False
args_max_length = 1024
flush_timeout_ms = 5000
repeat_threshold = 5
repeat_strict = False


def load_settings() -> None:
    global record_args, args_max_length, flush_timeout_ms, repeat_threshold, repeat_strict
    record_args = _settings.value("celery_task_args")
    args_max_length = _settings.value("celery_task_args_max_length")
    flush_timeout_ms = _settings.value("celery_flush_timeout_ms")
    repeat_threshold = _settings.value("task_send_repeat_threshold")
    repeat_strict = _settings.value("task_send_repeat_strict")
    from djtrace import _native
    from djtrace.integrations._callsite import skip_prefixes

    # Roots started from now on count task sends against this threshold.
    _native.task_send_configure(repeat_threshold, skip_prefixes())


# Message headers this integration adds (besides the propagator's own fields).
ENQUEUED_AT = "djtrace_enqueued_at"  # time.time() of the send, for the queue wait

# Attribute names: messaging semantic conventions, then the names the official Celery
# instrumentation uses (so existing queries keep working), then djtrace's own.
SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
ERROR_TYPE = "error.type"
TASK_NAME = "celery.task_name"
STATE = "celery.state"
RETRIES = "celery.retries"
ETA = "celery.eta"
COUNTDOWN = "celery.countdown"
EXPIRES = "celery.expires"
RETRY_REASON = "celery.retry.reason"
REVOKED_REASON = "celery.revoked.reason"
TERMINATED_SIGNAL = "celery.terminated.signal"
QUEUE_WAIT = "djtrace.celery.queue_wait_time"  # seconds from send to start
TIME_LIMIT = "djtrace.celery.time_limit_exceeded"  # "soft" or "hard"
REJECT_REQUEUE = "djtrace.celery.reject.requeue"
BEAT_ENTRY = "djtrace.celery.beat.entry"

_MAX_NAMES = 2000
_send_names: dict = {}
_process_names: dict = {}


def send_name(task_name: str) -> str:
    name = _send_names.get(task_name)
    if name is None:
        name = f"send {task_name}"
        if len(_send_names) < _MAX_NAMES:  # task names are few; a name made per call is not
            _send_names[task_name] = name
    return name


def process_name(task_name: str) -> str:
    name = _process_names.get(task_name)
    if name is None:
        name = f"process {task_name}"
        if len(_process_names) < _MAX_NAMES:
            _process_names[task_name] = name
    return name
