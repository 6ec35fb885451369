from django.contrib import admin
from django.urls import include, path
from orders import views
from rest_framework.routers import DefaultRouter

from order_service import health

router = DefaultRouter(use_regex_path=False)
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = [
    path("admin/", admin.site.urls),
    # Probes (not traced).
    path("health/", health.health, name="health"),
    path("readiness/", health.readiness, name="readiness"),
    path("liveness/", health.liveness, name="liveness"),
    # API: JWT, then the orders viewset.
    path("api/token/", views.TokenView.as_view(), name="token"),
    path("api/", include(router.urls)),
    # The guide's JSON and HTML views.
    path("orders/", views.order_list, name="order-list"),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
    path("orders/create/", views.OrderCreateView.as_view(), name="order-create"),
    path("orders/html/", views.order_list_html, name="order-list-html"),
    path("orders/html/<int:order_id>/", views.order_detail_html, name="order-detail-html"),
    # N+1: the same page, without and with select_related.
    path("orders/n-plus-one/bad/", views.orders_n_plus_one, name="orders-n-plus-one"),
    path("orders/n-plus-one/good/", views.orders_select_related, name="orders-select-related"),
]
