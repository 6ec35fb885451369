"""Business logic: order creation, analytics and search (their queries are traced by djtrace
with no code), and payment processing with spans of its own through the OpenTelemetry API."""

from decimal import Decimal
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .models import Order, OrderItem

tracer = trace.get_tracer(__name__)

VALID_PAYMENT_METHODS = ("credit_card", "debit_card", "paypal")


class OrderService:
    @staticmethod
    def create_order_with_items(user, items_data, product_name=None):
        """Creates an order and its items in one transaction: the trace shows a `transaction`
        span holding the INSERT of the order and one bulk INSERT of the items.

        `items_data`: dicts with `product`, `sku`, `quantity` and `price`.
        """
        with transaction.atomic():
            order = Order.objects.create(
                user=user,
                product_name=product_name or items_data[0]["product"],
                amount=sum(Decimal(item["price"]) * item["quantity"] for item in items_data),
                status="pending",
            )
            OrderItem.objects.bulk_create(
                OrderItem(
                    order=order,
                    product_sku=item["sku"],
                    quantity=item["quantity"],
                    unit_price=item["price"],
                )
                for item in items_data
            )
        return order

    @staticmethod
    def get_order_analytics(user_id):
        """One aggregate query: SELECT COUNT(...), SUM(...) FROM orders WHERE user_id = ?"""
        return Order.objects.filter(user_id=user_id).aggregate(
            total_orders=Count("id"),
            total_spent=Sum("amount"),
        )

    @staticmethod
    def search_orders(query):
        """Orders whose product or status contains `query`, with their user and items loaded
        in two queries whatever the number of results."""
        return (
            Order.objects.filter(Q(product_name__icontains=query) | Q(status__icontains=query))
            .select_related("user")
            .prefetch_related("items")
        )


class PaymentDeclined(Exception):
    """The payment gateway refused the charge."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class PaymentService:
    """Payment processing with custom spans, as in the guide:

        process_payment
        ├── SELECT orders
        ├── validate_payment_method
        └── payment_gateway.charge  [CLIENT]
            └── POST                [CLIENT, the HTTP call, traced by djtrace]

    The guide's version also calls span.record_exception() and sets an ERROR status in an
    `except` block before re-raising. start_as_current_span() already does both for an
    exception that leaves the `with` block, so that code recorded every exception twice; here
    the context manager alone records it.
    """

    @staticmethod
    def process_payment(order_id, payment_method):
        with tracer.start_as_current_span("process_payment") as span:
            span.set_attribute("order.id", order_id)
            span.set_attribute("payment.method", payment_method)

            order = Order.objects.get(id=order_id)
            span.set_attribute("payment.amount", float(order.amount))

            PaymentService._validate_payment_method(payment_method)
            transaction_id = PaymentService._charge_payment_gateway(
                order.id, order.amount, payment_method
            )
            span.set_attribute("payment.transaction_id", transaction_id)

            Order.objects.filter(id=order.id).update(status="paid")
            return {"success": True, "transaction_id": transaction_id}

    @staticmethod
    def _validate_payment_method(method):
        with tracer.start_as_current_span("validate_payment_method") as span:
            span.set_attribute("payment.method", method)
            if method not in VALID_PAYMENT_METHODS:
                raise ValueError(f"Invalid payment method: {method}")
            span.set_attribute("validation.result", "valid")

    @staticmethod
    def _charge_payment_gateway(order_id, amount, method):
        """One charge through the gateway's HTTP API. A CLIENT span: it stands for the call to
        another service (the HTTP request below it carries the trace context there)."""
        url = f"{settings.PAYMENT_GATEWAY_URL.rstrip('/')}/v1/charges"
        parts = urlsplit(url)
        with tracer.start_as_current_span(
            "payment_gateway.charge",
            kind=SpanKind.CLIENT,
            attributes={
                "payment.amount": float(amount),
                "payment.method": method,
                "payment.gateway": "example-gateway",
                "server.address": parts.hostname,
                "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            },
        ) as span:
            response = requests.post(
                url,
                json={"amount": str(amount), "method": method, "order_id": order_id},
                timeout=settings.PAYMENT_GATEWAY_TIMEOUT,
            )
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code == 200:
                transaction_id = response.json()["id"]
                span.set_attribute("payment.transaction_id", transaction_id)
                return transaction_id
            error = _gateway_error(response)
            span.set_attribute("payment.decline_code", error["code"])
            span.set_status(Status(StatusCode.ERROR, "Payment failed"))
            raise PaymentDeclined(error["code"], error["message"])


def _gateway_error(response):
    try:
        error = response.json()["error"]
        return {"code": str(error["code"]), "message": str(error["message"])}
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{response.status_code}", "message": "payment gateway error"}
