from django.urls import path
from project.shop import views

urlpatterns = [
    path("orders/bad/", views.orders_bad),
    path("orders/good/", views.orders_good),
    path("profiles/", views.customer_profiles),
    path("raw/", views.raw_sql),
    path("executemany/", views.executemany),
    path("tx/", views.tx),
    path("tx/rollback/", views.tx_rollback),
    path("error/", views.query_error),
    path("duplicates/", views.duplicates),
    path("counts/", views.tagged_count),
    path("orders/async/", views.orders_async),
    path("orders/async-api/", views.orders_async_api),
    path("orders/generic/", views.OrderListView.as_view()),
    path("api/orders/", views.OrderListAPIView.as_view()),
]
