from django.urls import path

from benchapp import views

urlpatterns = [
    path("orders/", views.order_list, name="order_list"),
    path("orders/<int:order_id>/", views.order_detail, name="order_detail"),
    path("orders/create/", views.order_create, name="order_create"),
    path("orders/<int:order_id>/page/", views.order_page, name="order_page"),
    path("orders/n-plus-one/", views.order_n_plus_one, name="order_n_plus_one"),
    path("health/", views.health, name="health"),
]
