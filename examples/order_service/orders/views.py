"""The guide's views. None of them contains tracing code: djtrace names a span after each view
(`order_list`, `OrderCreateView.post`, `OrderViewSet.create`), and the queries, templates,
DRF checks, serializers and task sends below it get spans of their own."""

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views import View
from django.views.decorators.http import require_GET
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .forms import OrderForm
from .models import Order
from .serializers import OrderSerializer
from .services import OrderService, PaymentDeclined, PaymentService
from .tasks import process_order
from .tokens import issue_token

# -- JSON views --------------------------------------------------------------------------------


@require_GET
def order_list(request):
    """GET /orders/: one SELECT with a JOIN on auth_user."""
    orders = Order.objects.select_related("user").order_by("-created_at")[:100]
    data = [{"id": o.id, "product": o.product_name, "amount": str(o.amount),
             "customer": o.user.username} for o in orders]
    return JsonResponse({"orders": data})


@require_GET
def order_detail(request, order_id):
    """GET /orders/<id>/"""
    order = get_object_or_404(Order, id=order_id)
    return JsonResponse({
        "id": order.id,
        "product": order.product_name,
        "amount": str(order.amount),
        "status": order.status,
    })


class OrderCreateView(LoginRequiredMixin, View):
    """POST /orders/create/ from an HTML form (session login and CSRF token required)."""

    def post(self, request):
        form = OrderForm(request.POST)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors}, status=400)
        order = form.save(commit=False)
        order.user = request.user
        order.status = "pending"
        order.save()
        transaction.on_commit(lambda: process_order.delay(order.id))
        return JsonResponse({"id": order.id, "status": "created"}, status=201)


# -- N+1 demonstration -------------------------------------------------------------------------


@require_GET
def orders_n_plus_one(request):
    """GET /orders/n-plus-one/bad/: one query for the orders, then one per order for its user.
    djtrace flags it: event `djtrace.n_plus_one` on the request span, naming the relation
    (Order.user) and the line below."""
    orders = Order.objects.order_by("-id")[:20]
    customers = [order.user.username for order in orders]  # a query per order
    return JsonResponse({"count": len(customers), "customers": customers})


@require_GET
def orders_select_related(request):
    """GET /orders/n-plus-one/good/: the same page in one query with a JOIN."""
    orders = Order.objects.select_related("user").order_by("-id")[:20]
    customers = [order.user.username for order in orders]
    return JsonResponse({"count": len(customers), "customers": customers})


# -- HTML views --------------------------------------------------------------------------------


def order_list_html(request):
    """GET /orders/html/: a query, then the template `orders/list.html` (a span per render)."""
    orders = Order.objects.select_related("user").order_by("-created_at")[:100]
    return render(request, "orders/list.html", {"orders": orders, "title": "Order List"})


def order_detail_html(request, order_id):
    """GET /orders/html/<id>/: `orders/detail.html` and its two includes, each a span."""
    order = get_object_or_404(Order.objects.select_related("user"), id=order_id)
    return render(request, "orders/detail.html", {"order": order})


# -- API ---------------------------------------------------------------------------------------


class TokenView(APIView):
    """POST /api/token/ {"username", "password"} -> {"access": "<JWT>", ...}"""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def post(self, request):
        user = authenticate(request, username=request.data.get("username"),
                            password=request.data.get("password"))
        if user is None:
            return Response({"detail": "Invalid credentials."}, status=status.HTTP_401_UNAUTHORIZED)
        return Response({"access": issue_token(user), "token_type": "Bearer",
                         "expires_in": settings.JWT_LIFETIME_SECONDS})


class OrderViewSet(viewsets.ModelViewSet):
    """/api/orders/: list, create, retrieve, update, delete; /api/orders/<id>/pay/;
    /api/orders/analytics/. `?customer=<email>` lists one customer's orders."""

    queryset = Order.objects.all()
    serializer_class = OrderSerializer
    lookup_value_converter = "int"

    def get_queryset(self):
        # The user and the items of a page of orders in two queries, whatever its size.
        queryset = super().get_queryset().select_related("user").prefetch_related("items")
        customer = self.request.query_params.get("customer")
        if customer:
            queryset = queryset.filter(user__email__iexact=customer)
        return queryset.order_by("-created_at")

    def perform_create(self, serializer):
        user = self.request.user
        email = serializer.validated_data.pop("customer_email", None)
        if email:
            if not user.is_staff:
                raise PermissionDenied("Only staff may order for a customer.")
            user = get_user_model().objects.filter(email__iexact=email).first()
            if user is None:
                raise ValidationError({"customer_email": "No customer with this address."})
        order = serializer.save(user=user)
        # Enqueue once the order is committed, or the worker could look for it before it
        # exists (the guide enqueues at once, which breaks under ATOMIC_REQUESTS). The send is a
        # PRODUCER span of this request's trace; the worker continues the same trace.
        transaction.on_commit(lambda: process_order.delay(order.id))

    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        """POST /api/orders/<id>/pay/ {"payment_method": "credit_card"}"""
        order = get_object_or_404(Order.objects.only("id"), pk=pk)
        try:
            result = PaymentService.process_payment(order.id, request.data.get("payment_method"))
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except PaymentDeclined as exc:
            return Response({"detail": "Payment declined.", "code": exc.code},
                            status=status.HTTP_402_PAYMENT_REQUIRED)
        return Response(result)

    @action(detail=False)
    def analytics(self, request):
        """GET /api/orders/analytics/: the caller's order count and total."""
        return Response(OrderService.get_order_analytics(request.user.id))

    @action(detail=False)
    def search(self, request):
        """GET /api/orders/search/?q=keyboard"""
        orders = OrderService.search_orders(request.query_params.get("q", ""))[:50]
        return Response(self.get_serializer(orders, many=True).data)
