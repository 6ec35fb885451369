"""Spans below the request: middleware, views, DRF, templates, cache, signals."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import AsyncClient, Client, override_settings
from opentelemetry.trace import SpanKind, StatusCode

from ._helpers import unmask

pytestmark = pytest.mark.django_db

MIDDLEWARE_CHAIN = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.web.middleware.MixinMiddleware",
    "project.web.middleware.function_middleware",
    "project.web.middleware.DualModeMiddleware",
]


def chain_of(spans, leaf):
    """Names from the root down to `leaf`."""
    names = []
    span = leaf
    while span is not None:
        names.append(span.name)
        span = spans.parent_of(span)
    return names[::-1]


# -- middleware ------------------------------------------------------------------------------

def test_one_span_per_middleware_nested_in_chain_order(spans):
    response = Client().get("/page/")
    assert response["X-Mixin"] == "1" and response["X-Function"] == "1"
    assert response["X-Dual"] == "sync"
    view = spans.one("page")
    assert chain_of(spans, view) == ["GET page/", *MIDDLEWARE_CHAIN, "page"]
    for name in MIDDLEWARE_CHAIN:
        span = spans.one(name)
        assert span.kind is SpanKind.INTERNAL
        assert span.status.status_code is StatusCode.UNSET


def test_middleware_proxies_behave_as_the_middleware_they_wrap():
    import gc
    import weakref

    from djtrace import _native
    from djtrace.integrations.django.middleware import wrap_instance

    class Recording:
        marker = "kept"

        def __init__(self, get_response):
            self.get_response = get_response
            self.seen = []

        def __call__(self, request):
            self.seen.append(request)
            return self.get_response(request)

        def process_view(self, request, view, args, kwargs):
            return None

    inner = Recording(lambda request: f"response to {request}")
    proxy = wrap_instance(inner, "tests.Recording")
    # Named after the middleware (Django's messages name hook.__self__.__class__), called
    # natively, the middleware's own attributes and hooks reachable through it.
    assert type(proxy).__name__ == "Recording"
    assert isinstance(proxy, _native.MiddlewareProxy)
    assert proxy("r1") == "response to r1" and proxy.__call__("r2") == "response to r2"
    assert inner.seen == ["r1", "r2"]
    assert proxy.marker == "kept" and proxy.seen is inner.seen
    assert proxy.process_view("r", None, (), {}) is None
    assert proxy.__dict__["_djtrace_inner"] is inner
    with pytest.raises(AttributeError):
        proxy.missing  # noqa: B018
    assert proxy(request="r3") == "response to r3"  # keywords reach the middleware too
    with pytest.raises(TypeError):
        proxy("r4", "extra")  # and so do wrong calls, with Python's own error
    # A cycle through the proxy (a middleware holding the chain that holds it) is collected.
    inner.get_response = proxy
    ref = weakref.ref(proxy)
    del proxy, inner
    gc.collect()
    assert ref() is None


def test_view_hooks_get_their_own_spans(spans):
    Client().get("/deferred/")
    innermost = spans.one("project.web.middleware.DualModeMiddleware")
    hooks = [s.name for s in spans.children(innermost)]
    # process_view hooks in MIDDLEWARE order, the view, then process_template_response
    # (reverse order) and the deferred rendering.
    assert hooks == [
        "django.middleware.csrf.CsrfViewMiddleware.process_view",
        "project.web.middleware.MixinMiddleware.process_view",
        "template_response",
        "project.web.middleware.MixinMiddleware.process_template_response",
        "render web/page.html",
    ]


def test_process_exception_hook_span(spans):
    from django.utils.deprecation import MiddlewareMixin

    class Recover(MiddlewareMixin):
        def process_exception(self, request, exception):
            from django.http import HttpResponse

            return HttpResponse("recovered", status=502)

    import project.web.middleware as mw

    mw.Recover = Recover
    try:
        with override_settings(MIDDLEWARE=["project.web.middleware.Recover"]):
            response = Client().get("/boom/")
    finally:
        del mw.Recover
    assert response.status_code == 502
    view = spans.one("boom")
    assert view.status.status_code is StatusCode.ERROR
    hook = spans.one("project.web.middleware.Recover.process_exception")
    assert spans.parent_of(hook).name == "project.web.middleware.Recover"
    assert spans.one("GET boom/").attributes["http.response.status_code"] == 502


def test_middleware_spans_under_asgi_with_async_only_middleware(spans):
    chain = ["project.web.middleware.AsyncOnlyMiddleware", *MIDDLEWARE_CHAIN]

    async def go():
        return await AsyncClient().get("/page/")

    with override_settings(MIDDLEWARE=chain):
        response = asyncio.run(go())
    assert response["X-Async-Only"] == "1"
    assert response["X-Dual"] == "async"
    view = spans.one("page")
    assert chain_of(spans, view) == ["GET page/", *chain, "page"]


def test_middleware_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"middleware_spans": False}):
        Client().get("/page/")
    names = spans.names()
    assert not [n for n in names if "Middleware" in n or "middleware" in n]
    assert spans.parent_of(spans.one("page")).name == "GET page/"


def test_middleware_spans_switched_on_after_the_chain_was_built(spans):
    client = Client()
    with override_settings(DJTRACE={"middleware_spans": False}):
        client.get("/page/")  # loads the middleware chain
    spans.clear()
    client.get("/page/")
    assert spans.one("django.middleware.common.CommonMiddleware")


def test_middleware_exception_is_recorded_on_its_span(spans):
    from django.utils.deprecation import MiddlewareMixin

    class Broken(MiddlewareMixin):
        def process_request(self, request):
            raise KeyError("middleware bug")

    import project.web.middleware as mw

    mw.Broken = Broken
    try:
        with override_settings(MIDDLEWARE=["project.web.middleware.Broken"]):
            assert Client(raise_request_exception=False).get("/page/").status_code == 500
    finally:
        del mw.Broken
    span = spans.one("project.web.middleware.Broken")
    assert span.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in span.events] == ["KeyError"]
    assert spans.one("GET").status.status_code is StatusCode.ERROR


# -- views -----------------------------------------------------------------------------------

def test_function_view_span(spans):
    Client().get("/items/5/")
    view = spans.one("item_detail")
    assert view.kind is SpanKind.INTERNAL
    assert view.attributes["code.function.name"] == "project.web.views.item_detail"


def test_class_based_view_named_with_its_handler(spans):
    Client().get("/items/")
    Client().post("/items/")
    Client().put("/items/")
    assert spans.one("ItemView.get").attributes["code.function.name"] == \
        "project.web.views.ItemView.get"
    assert spans.one("ItemView.post")
    assert spans.one("ItemView.http_method_not_allowed")


def test_view_span_covers_an_atomic_request(spans, monkeypatch):
    # With ATOMIC_REQUESTS, make_view_atomic returns the view inside transaction.atomic, not the
    # view itself: that callable is wrapped, still named after the view, and holds the
    # transaction.
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)
    for _ in range(2):
        assert Client().get("/items/5/").status_code == 200
    views = spans.by_name("item_detail")
    transactions = spans.by_name("transaction")
    assert len(views) == 2 and len(transactions) == 2
    assert {spans.parent_of(t).name for t in transactions} == {"item_detail"}


def test_a_view_runs_unobserved_when_naming_it_fails(spans, monkeypatch):
    # The view wrapper is native; a failure of its own (here, naming the view) must neither
    # reach the application nor stop the view: it runs without a view span.
    from djtrace.integrations.django import views

    def fail(self, method):
        raise RuntimeError("naming failed")

    monkeypatch.setattr(views.ViewInfo, "_compute", fail)
    monkeypatch.setattr(views, "_infos", {})  # views named by earlier tests are named afresh
    views._wrapped_cache.clear()
    response = Client().generic("BREW", "/items/")
    assert response.status_code == 405  # the view ran: ItemView has no BREW handler
    assert spans.one("HTTP items/").attributes["http.response.status_code"] == 405  # unknown method
    assert spans.by_name("ItemView.http_method_not_allowed") == []
    # The same for an async view, whose wrapper is Python.
    response = asyncio.run(AsyncClient().get("/async/"))
    assert response.status_code == 200
    assert spans.one("GET async/") and spans.by_name("async_view") == []


def test_view_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"view_spans": False}):
        Client().get("/items/5/")
    assert spans.by_name("item_detail") == []
    assert spans.one("GET items/<int:pk>/")


# -- DRF -------------------------------------------------------------------------------------

def test_drf_viewset_actions_and_serializer_spans(spans):
    client = Client()
    created = client.post("/api/notes/", {"title": "first", "body": "b"},
                          content_type="application/json")
    assert created.status_code == 201
    create = spans.one("NoteViewSet.create")
    assert create.attributes["code.function.name"] == "project.web.views.NoteViewSet.create"
    below = [s.name for s in spans.children(create)]
    assert below[:3] == ["NoteViewSet.perform_authentication", "NoteViewSet.check_permissions",
                         "NoteViewSet.check_throttles"]
    assert "NoteSerializer.is_valid" in below
    assert "NoteSerializer.save" in below
    assert "NoteSerializer.to_representation" in below
    assert spans.one("NoteSerializer.is_valid").attributes["djtrace.drf.valid"] is True
    assert spans.one("NoteViewSet.check_permissions").attributes[
        "djtrace.drf.permissions"] == ("AllowAny",)

    spans.clear()
    client.get("/api/notes/")
    listing = spans.one("NoteViewSet.list")
    rep = spans.one("NoteSerializer.to_representation")
    assert rep.attributes["djtrace.drf.many"] is True
    assert spans.parent_of(rep) is not None
    assert spans.parent_of(rep).name == "NoteViewSet.list"
    assert listing.status.status_code is StatusCode.UNSET

    spans.clear()
    note_id = created.json()["id"]
    client.get(f"/api/notes/{note_id}/")
    assert spans.one("NoteViewSet.retrieve")
    assert spans.one("GET api/notes/(?P<pk>[^/.]+)/$")


def test_drf_validation_error_is_a_400_not_an_error(spans):
    response = Client().post("/api/notes/", {"title": "invalid"},
                             content_type="application/json")
    assert response.status_code == 400
    valid = spans.one("NoteSerializer.is_valid")
    assert valid.attributes["djtrace.drf.valid"] is False
    assert valid.attributes["djtrace.drf.exception"] == \
        "rest_framework.exceptions.ValidationError"
    assert valid.status.status_code is StatusCode.UNSET
    request = spans.one("POST api/notes/$")
    assert request.status.status_code is StatusCode.UNSET
    view = spans.one("NoteViewSet.create")
    events = [e for e in view.events if e.name == "djtrace.drf.handled_exception"]
    assert events[0].attributes["http.response.status_code"] == 400
    for s in spans.spans:
        assert s.status.status_code is StatusCode.UNSET, s.name


def test_drf_permission_denied(spans):
    response = Client().get("/api/protected/")
    assert response.status_code == 403
    check = spans.one("ProtectedView.check_permissions")
    assert check.attributes["djtrace.drf.exception"] == \
        "rest_framework.exceptions.NotAuthenticated"
    assert check.attributes["http.response.status_code"] in (401, 403)
    assert check.status.status_code is StatusCode.UNSET
    assert spans.by_name("ProtectedView.check_throttles") == []  # never reached
    assert spans.one("GET api/protected/").status.status_code is StatusCode.UNSET


def test_drf_authentication_and_throttle_spans(spans):
    User.objects.create_user("bob", password="pw")
    client = Client()
    client.login(username="bob", password="pw")
    spans.clear()
    assert client.get("/api/protected/").status_code == 200
    auth = spans.one("ProtectedView.perform_authentication")
    assert auth.attributes["djtrace.drf.authenticator"] == "SessionAuthentication"
    assert spans.one("ProtectedView.check_throttles").attributes["djtrace.drf.throttles"] == \
        ("BurstThrottle",)
    spans.clear()
    assert client.get("/api/throttled/?throttle=1").status_code == 429
    throttle = spans.one("ThrottledView.check_throttles")
    assert throttle.attributes["djtrace.drf.exception"] == "rest_framework.exceptions.Throttled"
    assert throttle.attributes["http.response.status_code"] == 429
    assert throttle.status.status_code is StatusCode.UNSET


def test_drf_unhandled_exception_is_a_500_error(spans):
    response = Client(raise_request_exception=False).get("/api/failing/")
    assert response.status_code == 500
    assert spans.one("FailingApiView.get").status.status_code is StatusCode.ERROR
    assert spans.one("GET api/failing/").status.status_code is StatusCode.ERROR


def test_drf_serializer_outside_a_request(spans):
    from project.web.serializers import EchoSerializer

    serializer = EchoSerializer(data={"text": "hi"})
    assert serializer.is_valid()
    assert serializer.data == {"text": "hi"}
    assert serializer.data == {"text": "hi"}  # the second read is cached: no second span
    assert spans.names() == ["EchoSerializer.is_valid", "EchoSerializer.to_representation"]


def test_drf_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"drf_spans": False}):
        Client().post("/api/echo/", {"text": "x"}, content_type="application/json")
    assert [n for n in spans.names() if "Echo" in n] == ["EchoView.post"]


# -- templates -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_template_spans_for_extends_and_includes(spans):
    Client().get("/")
    index = spans.one("render web/index.html")
    base = spans.one("render web/base.html")
    items = spans.by_name("render web/_item.html")
    assert spans.parent_of(base) is index  or spans.parent_of(base).context == index.context
    assert len(items) == 2  # one include per loop iteration
    for item in items:
        # the include runs inside the parent's block, rendered by base.html
        assert spans.parent_of(item).name == "render web/base.html"
    assert spans.parent_of(index).name == "index"
    assert index.attributes["djtrace.template.engine"] == "django"


def test_template_from_a_string_and_render_to_string(spans):
    from django.template import Context, Template
    from django.template.loader import render_to_string

    Template("{{ x }}").render(Context({"x": 1}))
    render_to_string("web/page.html", {"title": "t"})
    assert spans.names() == ["render <string>", "render web/_item.html", "render web/page.html"]


def test_a_live_template_or_cache_span_shows_its_fixed_attributes(spans):
    # The hooks' fixed attributes are shared by their spans, not copied into each: code that
    # reads the current span while it is open must still see them, and its own additions.
    from django.template import Context, Template
    from opentelemetry import trace

    seen = []

    def probe():
        span = trace.get_current_span()
        span.set_attribute("app.probe", 1)
        seen.append(dict(span.attributes))
        return ""

    Template("{{ probe }}").render(Context({"probe": probe}))
    assert seen == [{"djtrace.template.engine": "django", "app.probe": 1}]
    [rendered] = spans.by_name("render <string>")
    assert dict(rendered.attributes) == seen[0]

    cache = caches["default"]
    cache.set("k", 1)
    cache.get("k")
    got = spans.one("cache.get")
    assert got.attributes["cache.hit"] is True
    stored = spans.one("cache.set")
    fixed = {k: v for k, v in got.attributes.items() if k != "cache.hit"}
    assert fixed and fixed == dict(stored.attributes)


def test_jinja2_templates_with_extends_and_include(spans):
    response = Client().get("/jinja/")
    assert b"jinja" in response.content and b"row" in response.content
    page = spans.one("render web/page.jinja")
    base = spans.one("render web/base.jinja")
    row = spans.one("render web/_row.jinja")
    assert page.attributes["djtrace.template.engine"] == "jinja2"
    assert spans.parent_of(base).context.span_id == page.context.span_id
    assert spans.parent_of(row).context.span_id == base.context.span_id
    assert spans.parent_of(page).name == "jinja_page"


def test_template_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"template_spans": False}):
        Client().get("/page/")
    assert not [n for n in spans.names() if n.startswith("render")]


# -- cache -----------------------------------------------------------------------------------

def test_every_cache_method_gets_a_span(spans):
    cache = caches["default"]
    cache.set("a", 1)
    cache.get("a")
    cache.get("missing")
    cache.add("b", 2)
    cache.get_many(["a", "b", "c"])
    cache.set_many({"c": 3, "d": 4})
    cache.incr("a")
    cache.decr("a")
    cache.touch("a", 10)
    cache.has_key("a")
    cache.get_or_set("e", 5)
    cache.get_or_set("e", 6)
    cache.delete("a")
    cache.delete_many(["b", "c"])
    cache.clear()
    names = spans.names()
    assert names == ["cache.set", "cache.get", "cache.get", "cache.add", "cache.get_many",
                     "cache.set_many", "cache.incr", "cache.decr", "cache.touch",
                     "cache.has_key", "cache.get_or_set", "cache.get_or_set", "cache.delete",
                     "cache.delete_many", "cache.clear"]
    s = spans.spans
    assert s[1].attributes["cache.hit"] is True
    assert s[2].attributes["cache.hit"] is False
    assert s[4].attributes["djtrace.cache.hits"] == 2
    assert s[4].attributes["djtrace.cache.misses"] == 1
    assert s[4].attributes["djtrace.cache.key_count"] == 3
    assert s[5].attributes["djtrace.cache.key_count"] == 2
    assert "djtrace.cache.key_count" not in s[0].attributes  # single-key: implied
    assert s[9].attributes["cache.hit"] is True
    assert s[10].attributes["cache.hit"] is False  # get_or_set that had to set
    assert s[11].attributes["cache.hit"] is True
    for span in s:
        a = span.attributes
        assert span.kind is SpanKind.INTERNAL
        assert a["djtrace.cache.alias"] == "default"
        assert a["djtrace.cache.backend"] == "django.core.cache.backends.locmem.LocMemCache"
        assert "db.system.name" not in a
        assert "djtrace.cache.key" not in a and "djtrace.cache.keys" not in a
    assert "'a'" not in str([dict(x.attributes) for x in s])


def test_cache_hits_follow_the_default_however_it_is_passed(spans):
    # A get is a hit when the result is not the default, passed by position or by keyword;
    # a stored None is a hit unless None is also the default.
    cache = caches["default"]
    sentinel = object()
    cache.set(key="kw", value=None)
    cache.get(key="kw")
    cache.get("kw", sentinel)
    cache.get("absent", default=sentinel)
    cache.get(key="absent", default=None, version=2)
    names = spans.names()
    assert names == ["cache.set", "cache.get", "cache.get", "cache.get", "cache.get"]
    hits = [s.attributes["cache.hit"] for s in spans.spans[1:]]
    assert hits == [False, True, False, False]


def test_a_cache_call_is_served_untraced_when_the_integration_cannot_read_its_settings(spans,
                                                                                      monkeypatch):
    # Instrumentation never raises into the application: settings it cannot read mean an
    # untraced call, not an AttributeError from cache.get.
    from djtrace.integrations.django import settings as dj_settings

    cache = caches["default"]
    monkeypatch.setattr(dj_settings, "_current", object())
    cache.set("untraced", 7)
    assert cache.get("untraced") == 7
    monkeypatch.undo()
    assert spans.names() == []


def test_a_failing_cache_call_records_the_error_and_restores_the_context(spans):
    from opentelemetry import trace

    cache = caches["default"]
    before = trace.get_current_span()
    with pytest.raises(ValueError):
        cache.incr("never-set")  # locmem raises ValueError for a missing key
    assert trace.get_current_span() is before
    cache.set("after", 1)  # the next call is a sibling, not a child of the failed one
    failed, after = spans.spans
    assert failed.name == "cache.incr"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert after.parent is None or after.parent.span_id != failed.context.span_id


def test_application_code_sees_the_view_span_as_current(spans):
    """The view's span is made current natively without setting OpenTelemetry's context
    variable; the API (get_current_span, get_current, spans started by the application, threads
    given a copy of the context) must see it all the same."""
    from project.web.views import PROBES

    from djtrace import _native

    assert Client().get("/context-probe/").status_code == 200
    view = spans.one("context_probe")
    view_id = view.context.span_id
    assert PROBES["view_current"] == PROBES["view_context"] == PROBES["after"] == view_id
    # djtrace.request_span(): the request's SERVER span from inside the view, and OpenTelemetry's
    # invalid span outside any request.
    from opentelemetry import trace

    import djtrace

    server = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert PROBES["request_span"] == server[-1].context.span_id
    assert djtrace.request_span() is trace.INVALID_SPAN
    user = spans.one("user work")
    assert user.parent.span_id == view_id
    assert spans.one("cache.get").parent.span_id == user.context.span_id
    assert spans.one("in pool").parent.span_id == view_id
    assert _native.deferred_span_count() == 0


def test_cache_calls_are_children_of_the_view(spans):
    Client().get("/")
    view = spans.one("index")
    for name in ("cache.set", "cache.get"):
        assert spans.parent_of(spans.one(name)).context.span_id == view.context.span_id


def test_cache_keys_only_when_enabled_and_redacted(spans):
    cache = caches["default"]
    with override_settings(DJTRACE={"cache_keys": True}):
        cache.get("user:42:token=abc123")
        cache.get_many(["k1", "session=xyz"])
    single, many = spans.spans
    assert unmask(single.attributes["djtrace.cache.key"]) == "user:42:token=REDACTED"
    assert unmask(many.attributes["djtrace.cache.keys"]) == ("k1", "session=REDACTED")


def test_async_cache_methods_are_traced_through_the_sync_ones(spans):
    cache = caches["default"]

    async def go():
        await cache.aset("x", 1)
        return await cache.aget("x")

    assert asyncio.run(go()) == 1
    assert spans.names() == ["cache.set", "cache.get"]


def _repeated_gets(span):
    return [e for e in span.events if e.name == "djtrace.cache.repeated_get"]


def test_a_cache_backend_made_per_request_is_freed_after_it(spans):
    """Under ASGI Django makes each request its own cache backends (its connection handler is
    local to the request's context) and drops them afterwards. Nothing of djtrace's may keep
    one alive: a reference back, hidden from the garbage collector, once leaked every
    request's backends and what they hold (a Redis client and its connection pool, sockets
    included)."""
    import contextvars
    import gc
    import weakref

    from django.core.cache import CacheHandler

    def request() -> weakref.ref:
        # Django's handler keeps its backends in the context: each request runs in its own.
        backend = CacheHandler()["default"]
        backend.set("per-request", 1)
        assert backend.get("per-request") == 1
        return weakref.ref(backend)

    gc.disable()
    try:
        refs = [contextvars.copy_context().run(request) for _ in range(3)]
        assert spans.names().count("cache.get") == 3  # the backends were traced
        # Freed as the request drops them, without waiting for a collection.
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


def test_a_backend_made_per_request_costs_one_shared_attribute(spans):
    """The methods are wrapped on the backend's class, once: a backend Django makes per
    request (under ASGI) gets only its info, shared by every backend of its class and alias,
    instead of a wrapper per method."""
    from django.core.cache import CacheHandler
    from django.core.cache.backends.locmem import LocMemCache

    first, second = CacheHandler()["default"], CacheHandler()["default"]
    assert first is not second
    plain = LocMemCache("djtrace-tests", {})  # made outside the handler
    assert set(first.__dict__) - set(plain.__dict__) == {"_djtrace_cache"}
    assert first._djtrace_cache is second._djtrace_cache
    assert first._djtrace_cache.alias == "default"
    first.set("k", 1)
    assert second.get("k") == 1  # one location, two backends
    assert spans.names() == ["cache.set", "cache.get"]


def test_a_backend_made_outside_the_cache_handler_is_served_untraced(spans):
    from django.core.cache.backends.locmem import LocMemCache

    caches["default"].get("warm")  # the class is wrapped
    spans.clear()
    backend = LocMemCache("elsewhere", {})
    backend.set("k", 2)
    assert backend.get("k") == 2
    assert backend.get_many(["k", "absent"]) == {"k": 2}
    assert spans.names() == []


def test_a_subclass_calling_its_parents_method_makes_one_span(spans, settings):
    """With the parent class wrapped too (another alias uses it), the subclass's call through
    super() is part of its own span."""
    from django.core.cache import CacheHandler
    from django.core.cache.backends.locmem import LocMemCache

    calls = []

    class CountingCache(LocMemCache):
        def get(self, key, default=None, version=None):
            calls.append(key)
            return super().get(key, default, version)

    settings.CACHES = {**settings.CACHES, "counting": {
        "BACKEND": f"{__name__}.CountingCache", "LOCATION": "counting"}}
    globals()["CountingCache"] = CountingCache
    try:
        caches["default"].get("warm")  # LocMemCache wrapped
        spans.clear()
        backend = CacheHandler()["counting"]
        backend.set("k", 3)
        assert backend.get("k") == 3
        assert backend.get("absent") is None
    finally:
        del globals()["CountingCache"]
    assert calls == ["k", "absent"]
    assert spans.names() == ["cache.set", "cache.get", "cache.get"]
    hit, miss = spans.spans[1:]
    assert hit.attributes["djtrace.cache.alias"] == "counting"
    assert hit.attributes["djtrace.cache.backend"].endswith("CountingCache")
    assert (hit.attributes["cache.hit"], miss.attributes["cache.hit"]) == (True, False)


def test_repeated_cache_reads_are_flagged_on_a_root_the_application_started(spans):
    # No request, no query: the root is the application's own span.
    from opentelemetry import trace

    cache = caches["default"]
    with trace.get_tracer("app").start_as_current_span("nightly job"):
        for _ in range(6):
            cache.get("job:key")
    root = spans.one("nightly job")
    assert root.attributes["djtrace.cache.repeated_get_count"] == 5
    [event] = _repeated_gets(root)
    assert event.attributes["djtrace.cache.get_count"] == 6
    assert event.attributes["code.function"] == (
        "test_repeated_cache_reads_are_flagged_on_a_root_the_application_started")


def test_repeated_cache_reads_are_flagged_on_the_root(spans):
    from djtrace import _native

    Client().get("/cache-reads/")
    root = spans.one("GET cache-reads/")
    # Six reads of hot:key: five of them re-read it. One key crossed the threshold.
    assert root.attributes["djtrace.cache.repeated_get_count"] == 5
    [event] = _repeated_gets(root)
    a = event.attributes
    assert a["djtrace.cache.get_count"] == 6
    assert a["djtrace.cache.hit_count"] == 0  # never set
    assert a["djtrace.cache.alias"] == "default"
    assert re.fullmatch(r"[0-9a-f]{16}", a["djtrace.cache.key_hash"])
    assert a["code.function"] == "many_cache_reads"  # the first read's call site
    assert "djtrace.cache.key" not in a
    assert "hot:key" not in repr(root.attributes) + repr(a)
    # The hash is the key's, the same in every request and process.
    spans.clear()
    Client().get("/cache-reads/")
    [again] = _repeated_gets(spans.one("GET cache-reads/"))
    assert again.attributes["djtrace.cache.key_hash"] == a["djtrace.cache.key_hash"]
    spans.clear()
    with override_settings(DJTRACE={"cache_repeat_threshold": 7}):
        Client().get("/cache-reads/")
    assert not _repeated_gets(spans.one("GET cache-reads/"))
    spans.clear()
    with override_settings(DJTRACE={"cache_repeat_threshold": 0}):
        Client().get("/cache-reads/")
    root = spans.one("GET cache-reads/")
    assert not _repeated_gets(root)
    assert "djtrace.cache.repeated_get_count" not in root.attributes
    assert _native.record_cache_get("default", "outside", None, True) is False  # no root


def test_repeated_cache_reads_export_the_key_only_when_enabled_and_redacted(spans):
    with override_settings(DJTRACE={"cache_keys": True, "cache_repeat_threshold": 2}):
        Client().get("/cache-reads/", {"key": "user:42:token=abc123"})
    [event] = _repeated_gets(spans.one("GET cache-reads/"))
    assert unmask(event.attributes["djtrace.cache.key"]) == "user:42:token=REDACTED"


def test_cache_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"cache_spans": False}):
        caches["default"].get("x")
    assert spans.spans == []


def test_redis_cache_backend(spans, redis_server):
    cache = caches["redis"]
    cache.set("r", "v")
    assert cache.get("r") == "v"
    cache.delete("r")
    gets = [s for s in spans.spans if s.name.startswith("cache.")]
    assert [s.name for s in gets] == ["cache.set", "cache.get", "cache.delete"]
    for s in gets:
        assert s.kind is SpanKind.CLIENT
        assert s.attributes["db.system.name"] == "redis"
        assert s.attributes["djtrace.cache.backend"] == \
            "django.core.cache.backends.redis.RedisCache"
        assert s.attributes["server.address"] == "127.0.0.1"
        assert s.attributes["server.port"] == int(redis_server.rsplit(":", 1)[1].split("/")[0])
    assert gets[1].attributes["cache.hit"] is True


# -- signals ---------------------------------------------------------------------------------

def test_signal_receiver_spans_are_off_by_default(spans):
    Client().get("/signal/")
    assert not [n for n in spans.names() if n.startswith("signal")]


def test_signal_receiver_spans_when_enabled(spans):
    from project.web.signals import fast_receiver, order_placed, slow_receiver

    with override_settings(DJTRACE={"signal_spans": True}):
        Client().get("/signal/")
        responses = order_placed.send(sender=None)
    view = spans.one("send_signal")
    receivers = [s for s in spans.children(view) if s.name.startswith("signal")]
    assert [s.name for s in receivers] == ["signal project.web.signals.fast_receiver",
                                           "signal project.web.signals.slow_receiver"]
    assert receivers[0].attributes["code.function.name"] == \
        "project.web.signals.fast_receiver"
    # send() still names the receivers the application connected.
    assert [r for r, _ in responses] == [fast_receiver, slow_receiver]
    assert [v for _, v in responses] == ["fast", "slow"]


def test_known_signals_are_named(spans):
    User.objects.create_user("carol", password="pw")
    client = Client()
    with override_settings(DJTRACE={"signal_spans": True}):
        spans.clear()
        client.post("/login/", {"username": "carol", "password": "pw"})
    span = spans.one("signal user_logged_in django.contrib.auth.models.update_last_login")
    assert span.attributes["djtrace.signal.name"] == "user_logged_in"
    assert spans.parent_of(span).name == "login_view"


def test_only_slow_receivers_with_a_threshold(spans):
    with override_settings(DJTRACE={"signal_spans": True, "signal_min_duration_ms": 10}):
        Client().get("/signal/")
    receivers = [s for s in spans.spans if s.name.startswith("signal project.")]
    assert [s.name for s in receivers] == ["signal project.web.signals.slow_receiver"]
    assert receivers[0].end_time - receivers[0].start_time >= 10_000_000
