"""The Celery app the create endpoint enqueues to (Redis broker in the benchmark; nobody consumes
that queue during the HTTP runs, the harness empties it afterwards)."""

from celery import Celery
from django.conf import settings

app = Celery("benchapp", broker=settings.CELERY_BROKER_URL)
app.conf.update(task_ignore_result=True, task_default_queue="bench-orders",
                broker_connection_retry_on_startup=True)


@app.task(name="benchapp.process_order")
def process_order(order_id):
    return order_id
