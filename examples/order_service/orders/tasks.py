"""Celery tasks. Each task run is a CONSUMER span `process orders.tasks.<name>` in the trace of
the request, command or beat tick that sent it (djtrace carries the W3C trace context in the
message headers), and its queries, e-mails and custom spans nest under it."""

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from opentelemetry import trace

from .models import Order

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@shared_task
def process_order(order_id):
    # The current span is the task's consumer span, a child of the span that enqueued it.
    current_span = trace.get_current_span()
    current_span.set_attribute("order.id", order_id)

    order = Order.objects.select_related("user").get(id=order_id)

    if order.amount > settings.HIGH_VALUE_ORDER_AMOUNT:
        validate_high_value_order(order)

    order.status = "processing"
    # Only the column that changed: UPDATE orders SET status = ?, updated_at = ? WHERE id = ?
    order.save(update_fields=["status", "updated_at"])

    send_order_confirmation_email(order)

    current_span.set_attribute("order.status", order.status)
    logger.info("order %s processed", order_id)
    return {"order_id": order_id, "status": order.status}


def send_order_confirmation_email(order):
    """Sends the confirmation through Django's e-mail backend, in a span of its own.

    The guide declares this a @shared_task but calls it directly with a model instance: a task
    argument must be serialisable (an id), and a direct call runs in the caller anyway. It is a
    plain function here, so its span is a child of process_order's, as the guide's expected
    trace shows.
    """
    with tracer.start_as_current_span("send_confirmation_email") as span:
        # An e-mail address: the "gdpr" PII profile redacts it before export.
        span.set_attribute("email.to", order.user.email)
        span.set_attribute("order.id", order.id)
        sent = send_mail(
            subject=f"Order Confirmation - {order.id}",
            message=f"Your order for {order.product_name} has been confirmed.",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[order.user.email],
        )
        span.set_attribute("email.sent", bool(sent))


def validate_high_value_order(order):
    with tracer.start_as_current_span("validate_high_value_order") as span:
        span.set_attribute("order.id", order.id)
        span.set_attribute("order.amount", float(order.amount))
        if order.amount > 10000:
            span.set_attribute("validation.requires_approval", True)
        else:
            span.set_attribute("validation.auto_approved", True)


@shared_task
def enqueue_pending_orders(limit=100):
    """Run by beat (CELERY_BEAT_SCHEDULE): sends process_order for orders still pending. Each
    send is a PRODUCER span in the trace of this task."""
    order_ids = list(
        Order.objects.filter(status="pending").order_by("id").values_list("id", flat=True)[:limit]
    )
    for order_id in order_ids:
        process_order.delay(order_id)
    trace.get_current_span().set_attribute("orders.enqueued_count", len(order_ids))
    return len(order_ids)
