from decimal import Decimal

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from benchapp.models import Order, OrderItem


@require_GET
def order_list(request):
    """The 20 latest orders: one query with a join."""
    orders = Order.objects.select_related("user").order_by("-id")[:20]
    return JsonResponse({"orders": [
        {"id": o.id, "user": o.user.username, "product": o.product_name, "amount": str(o.amount),
         "status": o.status} for o in orders]})


@require_GET
def order_detail(request, order_id):
    """One order, its items and its customer's totals: three queries."""
    order = get_object_or_404(Order.objects.select_related("user"), id=order_id)
    items = list(order.items.all())
    totals = Order.objects.filter(user_id=order.user_id).aggregate(n=Count("id"), spent=Sum("amount"))
    return JsonResponse({
        "id": order.id, "product": order.product_name, "amount": str(order.amount),
        "status": order.status, "items": [{"sku": i.product_sku, "quantity": i.quantity}
                                          for i in items],
        "customer_orders": totals["n"], "customer_spent": str(totals["spent"]),
    })


@require_POST
def order_create(request):
    """An order with two items in one transaction, then a Celery task enqueued."""
    from benchapp.celery import process_order

    user_id = int(request.POST.get("user", "1"))
    price = Decimal(request.POST.get("price", "9.90"))
    with transaction.atomic():
        order = Order.objects.create(user_id=user_id, product_name=request.POST.get("product", "x"),
                                     amount=price * 3, status="pending")
        OrderItem.objects.bulk_create([
            OrderItem(order=order, product_sku="SKU-1", quantity=1, unit_price=price),
            OrderItem(order=order, product_sku="SKU-2", quantity=2, unit_price=price),
        ])
    process_order.delay(order.id)
    return JsonResponse({"id": order.id, "status": "created"}, status=201)


@require_GET
def order_page(request, order_id):
    """The HTML page: six queries, two cache calls, a template with an include."""
    order = get_object_or_404(Order.objects.select_related("user"), id=order_id)
    items = list(order.items.all())
    recent = list(Order.objects.filter(user_id=order.user_id).order_by("-created_at")[:5])
    totals = Order.objects.filter(user_id=order.user_id).aggregate(n=Count("id"), spent=Sum("amount"))
    pending = Order.objects.filter(user_id=order.user_id, status="pending").count()
    skus = list(OrderItem.objects.filter(order__user_id=order.user_id)
                .values_list("product_sku", flat=True).distinct()[:10])
    key = f"order-page-views:{order.id}"
    views = cache.get(key, 0) + 1
    cache.set(key, views, 300)
    return render(request, "benchapp/order_page.html", {
        "order": order, "items": items, "recent": recent, "totals": totals,
        "pending": pending, "skus": skus, "views": views})


@require_GET
def order_n_plus_one(request):
    """The guide's bad listing: one query for the orders, then one per order for its user."""
    orders = Order.objects.order_by("-id")[:10]
    return JsonResponse({"orders": [{"id": o.id, "user": o.user.username} for o in orders]})


def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
