"""The guide's order listings and the database situations djtrace must trace.

Tests find the lines of the queries by the `# query: <name>` markers, so keep one query per
marked line.
"""

from django.db import DatabaseError, connection, transaction
from django.http import JsonResponse
from django.views.generic import ListView
from project.shop.models import Customer, Order, OrderItem, Tag
from rest_framework import generics, serializers


def orders_bad(request):
    """BAD: one query for the orders, then one per order for its customer and its items."""
    rows = []
    for order in Order.objects.order_by("id"):  # query: bad-orders
        customer = order.customer.name  # query: bad-customer
        skus = [item.sku for item in order.items.all()]  # query: bad-items
        rows.append({"reference": order.reference, "customer": customer, "skus": skus})
    return JsonResponse({"orders": rows})


def orders_good(request):
    """GOOD: the customers joined, the items prefetched: two queries whatever the count."""
    orders = Order.objects.select_related("customer").prefetch_related("items").order_by("id")
    rows = []
    for order in orders:  # query: good-orders
        rows.append({"reference": order.reference, "customer": order.customer.name,
                     "skus": [item.sku for item in order.items.all()]})
    return JsonResponse({"orders": rows})


def customer_profiles(request):
    """Reverse one-to-one (customer.profile) and many-to-many (order.tags) lazy loads."""
    tiers = []
    for customer in Customer.objects.order_by("id"):
        tiers.append(customer.profile.loyalty_tier)  # query: profile
    labels = []
    for order in Order.objects.order_by("id"):
        labels.append([t.label for t in order.tags.all()])  # query: tags
    return JsonResponse({"tiers": tiers, "labels": labels})


def raw_sql(request):
    """Raw cursors: one parameterised query, one with literals written into the text."""
    email = request.GET.get("email", "nobody@example.com")
    with connection.cursor() as cursor:
        sql = "SELECT id, name FROM customers WHERE email = %s"
        cursor.execute(sql, [email])  # query: raw-param
        found = cursor.fetchall()
        cursor.execute(  # query: raw-literal
            "SELECT count(*) FROM orders WHERE reference = 'SECRET-REF-4242' AND total > 1234.5")
        count = cursor.fetchone()[0]
    return JsonResponse({"found": len(found), "count": count})


def executemany(request):
    """executemany: one span with the batch size."""
    order = Order.objects.order_by("id").first()
    rows = [(order.id, f"SKU-SECRET-{i}", i + 1) for i in range(7)]
    with connection.cursor() as cursor:
        cursor.executemany(  # query: executemany
            "INSERT INTO order_items (order_id, sku, quantity) VALUES (%s, %s, %s)", rows)
    return JsonResponse({"inserted": len(rows)})


def tx(request):
    """An outer transaction that commits, with a savepoint that rolls back inside it."""
    customer = Customer.objects.order_by("id").first()
    with transaction.atomic():  # query: tx-outer
        order = Order.objects.create(customer=customer, reference="TX-1", total=10)
        try:
            with transaction.atomic():  # query: tx-inner
                OrderItem.objects.create(order=order, sku="KEPT-NOT", quantity=1)
                raise ValueError("changed my mind")
        except ValueError:
            pass
    return JsonResponse({"items": order.items.count()})


def tx_rollback(request):
    """An outer transaction that rolls back (the exception leaves the block)."""
    customer = Customer.objects.order_by("id").first()
    try:
        with transaction.atomic():  # query: tx-rollback
            Order.objects.create(customer=customer, reference="TX-GONE", total=1)
            raise RuntimeError("abort the order")
    except RuntimeError:
        pass
    return JsonResponse({"gone": not Order.objects.filter(reference="TX-GONE").exists()})


def query_error(request):
    """A query that fails: the span records the error; the view handles it."""
    try:
        with transaction.atomic():  # a savepoint, so PostgreSQL's transaction stays usable
            with connection.cursor() as cursor:
                cursor.execute(  # query: error
                    "SELECT secret_column FROM no_such_table WHERE token = %s",
                    ["SECRET-TOKEN-123"])
    except DatabaseError as exc:
        return JsonResponse({"error": type(exc).__name__}, status=200)
    return JsonResponse({"error": None})


def duplicates(request):
    """The same query with the same parameter three times, and once with another one."""
    first = Customer.objects.order_by("id").first()
    last = Customer.objects.order_by("-id").first()
    names = []
    for pk in (first.pk, first.pk, first.pk, last.pk):
        names.append(Customer.objects.get(pk=pk).name)  # query: duplicate
    return JsonResponse({"names": names})


def tagged_count(request):
    """Counting through a related manager in a loop is an N+1 too (order.items.count())."""
    counts = [order.items.count() for order in Order.objects.order_by("id")]  # query: count
    return JsonResponse({"counts": counts, "tags": Tag.objects.count()})


async def orders_async(request):
    """The bad listing from an async view: the ORM runs in a worker thread."""
    from asgiref.sync import sync_to_async

    def listing():
        return [order.customer.email for order in Order.objects.order_by("id")]  # query: async

    emails = await sync_to_async(listing)()
    return JsonResponse({"count": len(emails)})


async def orders_async_api(request):
    """The bad listing with Django's async API: every query runs in a worker thread, where no
    frame of this view is on the stack."""
    emails = []
    async for order in Order.objects.order_by("id"):  # query: async-iter
        customer = await Customer.objects.aget(pk=order.customer_id)  # query: async-aget
        emails.append(customer.email)
    first = await Order.objects.order_by("id").afirst()
    first.reference = first.reference  # unchanged; saved to show where the UPDATE comes from
    await first.asave(update_fields=["reference"])  # query: async-asave
    return JsonResponse({"count": len(emails)})


class OrderListView(ListView):
    """A generic view: no method of the application's runs, and Django's handler renders its
    TemplateResponse (web/orders.html, which loads each order's customer lazily)."""

    queryset = Order.objects.order_by("id")
    template_name = "web/orders.html"
    context_object_name = "orders"


class OrderSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name")  # a lazy load per order

    class Meta:
        model = Order
        fields = ["id", "reference", "customer"]


class OrderListAPIView(generics.ListAPIView):
    """DRF's generic list: no method of the application's runs."""

    queryset = Order.objects.order_by("id")
    serializer_class = OrderSerializer
