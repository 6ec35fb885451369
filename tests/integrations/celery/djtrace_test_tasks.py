"""The Celery app of the Celery integration tests: the producer (the test process) and the
worker processes the tests start both import it. Outside Django, so the app instruments itself
with djtrace.celery.instrument(app), as the README tells users to.

Broker and result backend: the test Redis (DJTRACE_TEST_BROKER); the queue of each worker is
DJTRACE_TEST_QUEUE so that tests never see each other's messages.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.utils.log import get_task_logger
from opentelemetry import baggage, trace

import djtrace.celery

BROKER = os.environ.get(
    "DJTRACE_TEST_BROKER",
    f"redis://127.0.0.1:{os.environ.get('DJTRACE_REDIS_PORT', '63799')}/5")
QUEUE = os.environ.get("DJTRACE_TEST_QUEUE", "celery")

app = Celery("djtrace_test_tasks", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    # Log correlation: the trace id of the task's span on every task log line.
    worker_log_format=(
        "[%(asctime)s: %(levelname)s/%(processName)s] trace_id=%(otelTraceID)s %(message)s"),
    worker_task_log_format=(
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s] "
        "trace_id=%(otelTraceID)s span_id=%(otelSpanID)s: %(message)s"),
    result_expires=600,
)
if os.environ.get("DJTRACE_TEST_BEAT_QUEUE"):
    app.conf.beat_schedule = {
        "tick": {"task": "djtrace_test_tasks.add", "schedule": 0.5, "args": (1, 1),
                 "options": {"queue": os.environ["DJTRACE_TEST_BEAT_QUEUE"]}},
    }
djtrace.celery.instrument(app)

logger = get_task_logger(__name__)
plain_logger = logging.getLogger("djtrace_test_tasks.plain")


@app.task
def add(x, y):
    logger.info("adding %s and %s", x, y)
    return x + y


@app.task(bind=True)
def enqueue_child(self, x):
    """Sends another task from inside a task (Celery-to-Celery) and returns its id."""
    child = add.delay(x, 1)
    return child.id


@app.task
def read_baggage(key):
    value = baggage.get_baggage(key)
    trace.get_current_span().set_attribute("test.baggage", str(value))
    return value


@app.task(bind=True, max_retries=3)
def retry_once(self):
    if self.request.retries < 1:
        raise self.retry(exc=ValueError("first attempt fails"), countdown=0)
    return self.request.retries


@app.task
def fail(message):
    raise RuntimeError(message)


@app.task
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def log_line(text):
    logger.warning("task log line: %s", text)
    plain_logger.warning("plain log line: %s", text)
    return text
