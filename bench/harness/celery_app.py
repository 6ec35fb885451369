"""The Celery app of the task-throughput workload: a trivial task on a Redis broker, traced as
BENCH_CONFIG says (the official CeleryInstrumentor and RedisInstrumentor on opentelemetry-sdk,
or djtrace.celery.instrument()), in the producer and in the worker alike."""

import os

from celery import Celery

from harness import stacks

if stacks.kind() == "otel":
    stacks.official_init(django=False)
elif stacks.kind() == "djtrace":
    import djtrace.celery

    djtrace.celery.instrument()

app = Celery("bench_tasks", broker=os.environ["BENCH_BROKER"],
             backend=os.environ["BENCH_BACKEND"])
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=64,
                broker_connection_retry_on_startup=True,
                task_default_queue=os.environ.get("BENCH_QUEUE", "celery"))


@app.task(name="bench.add")
def add(x, y):
    return x + y


@app.task(name="bench.done", ignore_result=False)
def done():
    return True
