from django.urls import include, path

urlpatterns = [
    path("", include("project.web.urls")),
    path("shop/", include("project.shop.urls")),
]
