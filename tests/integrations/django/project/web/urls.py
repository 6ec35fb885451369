from django.urls import include, path, re_path
from project.web import views
from rest_framework.routers import DefaultRouter

router = DefaultRouter()
router.register("notes", views.NoteViewSet)

urlpatterns = [
    path("", views.index),
    path("plain/", views.plain),
    path("bench/", views.bench_page),
    path("page/", views.page),
    path("items/", views.ItemView.as_view()),
    path("items/<int:pk>/", views.item_detail),
    re_path(r"^legacy/(?P<pk>[0-9]+)/$", views.item_detail),
    path("boom/", views.boom),
    path("missing/", views.not_found),
    path("forbidden/", views.forbidden),
    path("bad/", views.bad_request),
    path("unavailable/", views.unavailable),
    path("stream/", views.stream),
    path("stream-error/", views.stream_error),
    path("astream/", views.astream),
    path("download/", views.download),
    path("slow/", views.slow_async),
    path("async/", views.async_view),
    path("jinja/", views.jinja_page),
    path("deferred/", views.template_response),
    path("login/", views.login_view),
    path("logout/", views.logout_view),
    path("whoami/", views.whoami),
    path("untouched/", views.untouched_user),
    path("signal/", views.send_signal),
    path("run-command/", views.run_command),
    path("baggage/", views.current_baggage),
    path("context-probe/", views.context_probe),
    path("healthz/", views.health),
    path("cache-reads/", views.many_cache_reads),
    path("api/protected/", views.ProtectedView.as_view()),
    path("api/throttled/", views.ThrottledView.as_view()),
    path("api/echo/", views.EchoView.as_view()),
    path("api/failing/", views.FailingApiView.as_view()),
    path("api/", include(router.urls)),
]
