"""The request span: names, attributes, statuses, propagation, exclusion, headers, users."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings
from opentelemetry import context as context_api
from opentelemetry.trace import SpanKind, StatusCode

from djtrace.integrations.django import settings as dj_settings

from ._helpers import unmask

pytestmark = pytest.mark.django_db

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def server_span(spans):
    found = [s for s in spans.spans if s.kind is SpanKind.SERVER]
    assert len(found) == 1, spans.format_tree()
    return found[0]


def test_span_named_after_the_route_with_stable_attributes(spans):
    response = Client().get("/items/42/?q=shoes&page=2", HTTP_USER_AGENT="pytest-agent/1",
                            HTTP_HOST="shop.example:8443")
    assert response.status_code == 200
    span = server_span(spans)
    assert span.name == "GET items/<int:pk>/"
    assert span.parent is None
    a = span.attributes
    assert a["http.request.method"] == "GET"
    assert a["http.route"] == "items/<int:pk>/"
    assert a["url.path"] == "/items/42/"
    assert a["url.query"] == "q=shoes&page=2"
    assert a["url.scheme"] == "http"
    assert a["server.address"] == "shop.example"
    assert a["server.port"] == 8443
    assert a["client.address"] == "127.0.0.1"
    assert a["user_agent.original"] == "pytest-agent/1"
    assert a["network.protocol.version"] == "1.1"
    assert a["http.response.status_code"] == 200
    assert "http.method" not in a and "http.status_code" not in a  # old names: opt-in only
    assert span.status.status_code is StatusCode.UNSET


def test_a_request_gunicorn_serves_leaves_its_ids_for_the_access_log(spans):
    # Gunicorn writes its access log after the span has ended: `%({djtrace.trace_id}e)s` and
    # djtrace.integrations.logging.gunicorn.Logger read the ids from the environ.
    from djtrace.integrations import logging as log_integration

    was_installed = log_integration.is_installed()
    served_by_gunicorn = {"gunicorn.socket": object()}
    try:
        log_integration.install()
        meta = Client().get("/items/42/", **served_by_gunicorn).wsgi_request.META
        span = server_span(spans)
        assert meta["djtrace.trace_id"] == f"{span.context.trace_id:032x}"
        assert meta["djtrace.span_id"] == f"{span.context.span_id:016x}"
        assert meta["djtrace.trace_sampled"] == "true"
        # Another server, or the logging integration not installed: nothing is left.
        assert "djtrace.trace_id" not in Client().get("/items/42/").wsgi_request.META
        log_integration.uninstall()
        meta = Client().get("/items/42/", **served_by_gunicorn).wsgi_request.META
        assert "djtrace.trace_id" not in meta
    finally:
        if was_installed:
            log_integration.install()
        else:
            log_integration.uninstall()


def test_url_scheme_follows_the_wsgi_environ_and_secure_proxy_ssl_header(spans):
    import sys

    from django.http import HttpRequest

    calls = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is HttpRequest.scheme.fget.__code__:
            calls.append(frame.f_code.co_name)

    Client().get("/items/1/")
    Client().get("/items/2/", secure=True)  # wsgi.url_scheme "https"
    Client().get("/items/3/", HTTP_X_FORWARDED_PROTO="https")  # no proxy header configured
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        Client().get("/items/4/", HTTP_X_FORWARDED_PROTO="https")
        Client().get("/items/5/", HTTP_X_FORWARDED_PROTO="http", secure=True)
        sys.setprofile(profile)
        try:
            Client().get("/items/6/", HTTP_X_FORWARDED_PROTO="https")
        finally:
            sys.setprofile(None)
        with_header = len(calls)
    sys.setprofile(profile)
    try:
        Client().get("/items/7/")
    finally:
        sys.setprofile(None)
    schemes = [s.attributes["url.scheme"] for s in spans.spans if s.kind is SpanKind.SERVER]
    assert schemes == ["http", "https", "http", "https", "http", "https", "http"]
    # Without the proxy header setting djtrace reads the environ itself; only Django's own
    # checks call the property. With it, djtrace asks the property too.
    assert len(calls) - with_header < with_header


def test_regex_routes_and_class_views_are_named_by_pattern(spans):
    Client().get("/legacy/7/")
    Client().post("/items/")
    names = [s.name for s in spans.spans if s.kind is SpanKind.SERVER]
    assert names == ["GET ^legacy/(?P<pk>[0-9]+)/$", "POST items/"]


def test_root_route_and_unresolved_paths(spans):
    Client().get("/")
    Client().get("/no/such/page/12345/")
    Client().get("/another/unknown/path/")
    servers = [s for s in spans.spans if s.kind is SpanKind.SERVER]
    assert servers[0].name == "GET /"
    # Unresolved: the method alone, never the raw path (names must stay few).
    assert [s.name for s in servers[1:]] == ["GET", "GET"]
    assert "http.route" not in servers[1].attributes
    assert servers[1].attributes["http.response.status_code"] == 404
    assert servers[1].status.status_code is StatusCode.UNSET


def test_unknown_methods_are_reported_as_other(spans):
    Client().generic("PURGE", "/items/")
    span = server_span(spans)
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"
    assert span.name == "HTTP items/"


def test_sensitive_query_values_are_redacted(spans):
    Client().get("/items/1/?q=ok&password=hunter2&api_key=abc123&token=t0k&sig=zz")
    query = unmask(server_span(spans).attributes["url.query"])
    assert query == "q=ok&password=REDACTED&api_key=REDACTED&token=REDACTED&sig=REDACTED"
    for secret in ("hunter2", "abc123", "t0k"):
        assert secret not in str(server_span(spans).attributes)


def test_5xx_response_is_an_error(spans):
    response = Client().get("/unavailable/")
    assert response.status_code == 503
    span = server_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"
    assert not [e for e in span.events if e.name == "exception"]


@pytest.mark.parametrize("path,status", [("/missing/", 404), ("/forbidden/", 403),
                                         ("/bad/", 400)])
def test_4xx_is_not_an_error(spans, path, status):
    assert Client().get(path).status_code == status
    span = server_span(spans)
    assert span.attributes["http.response.status_code"] == status
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    view = spans.children(spans.one(f"GET {path.strip('/')}/"))
    assert view  # the middleware chain below it
    for s in spans.spans:
        assert s.status.status_code is StatusCode.UNSET, s.name


def test_unhandled_exception_is_an_error_with_an_exception_event(spans):
    client = Client(raise_request_exception=False)
    assert client.get("/boom/").status_code == 500
    span = server_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "builtins.RuntimeError" or \
        span.attributes["error.type"] == "RuntimeError"
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert events[0].attributes["exception.type"] == "RuntimeError"
    assert events[0].attributes["exception.message"] == "the view failed"
    view = spans.one("boom")
    assert view.status.status_code is StatusCode.ERROR
    assert spans.parent_of(view).name == "project.web.middleware.DualModeMiddleware"


def test_exception_propagated_by_the_test_client_still_ends_the_span(spans):
    with pytest.raises(RuntimeError):
        Client().get("/boom/")
    span = server_span(spans)
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.ERROR


def test_remote_parent_and_tracestate_are_continued(spans):
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    Client().get("/items/1/", HTTP_TRACEPARENT=traceparent, HTTP_TRACESTATE="vendor=abc")
    span = server_span(spans)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.context.trace_state.get("vendor") == "abc"
    # Every span of the request is in the caller's trace.
    assert {f"{s.context.trace_id:032x}" for s in spans.spans} == {TRACE_ID}


def test_unsampled_caller_records_nothing_below(spans):
    """A caller that did not sample: the request and every layer below it stay unrecorded
    (parent-based sampling), and the response is unaffected."""
    response = Client().get("/", HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-00")
    assert response.status_code == 200
    assert spans.spans == []


def test_baggage_reaches_the_view(spans):
    response = Client().get("/baggage/", HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01",
                            HTTP_BAGGAGE="tenant=acme,plan=gold")
    body = response.json()
    assert body["baggage"] == {"tenant": "acme", "plan": "gold"}
    assert body["trace_id"] == TRACE_ID


def test_baggage_without_traceparent_starts_a_new_trace(spans):
    body = Client().get("/baggage/", HTTP_BAGGAGE="tenant=acme").json()
    assert body["baggage"] == {"tenant": "acme"}
    assert server_span(spans).parent is None


@pytest.mark.parametrize("header", [
    "garbage",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    f"00-{TRACE_ID}-0000000000000000-01",  # zero span id
    f"ff-{TRACE_ID}-{PARENT_ID}-01",  # forbidden version
    f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",  # short
    "00-" + "g" * 32 + f"-{PARENT_ID}-01",  # not hex
    "\x00\xff" * 40,
])
def test_malformed_traceparent_is_ignored(spans, header):
    response = Client().get("/items/1/", HTTP_TRACEPARENT=header, HTTP_TRACESTATE="a=b,,,=",
                            HTTP_BAGGAGE="%%%;;==,")
    assert response.status_code == 200
    span = server_span(spans)
    assert span.parent is None
    assert f"{span.context.trace_id:032x}" != TRACE_ID


def test_dup_semconv_emits_the_old_names_too(spans, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    dj_settings.reload()
    Client().get("/items/3/?q=x&secret=s", HTTP_USER_AGENT="ua", HTTP_HOST="h.example:81")
    a = server_span(spans).attributes
    assert a["http.method"] == "GET"
    assert a["http.status_code"] == 200
    assert a["http.scheme"] == "http"
    assert a["http.host"] == "h.example:81"
    assert unmask(a["http.target"]) == "/items/3/?q=x&secret=REDACTED"
    assert unmask(a["http.url"]) == "http://h.example:81/items/3/?q=x&secret=REDACTED"
    assert a["http.user_agent"] == "ua"
    assert a["http.flavor"] == "1.1"
    assert a["net.peer.ip"] == "127.0.0.1"
    assert a["http.route"] == "items/<int:pk>/"
    # ... next to the stable names
    assert a["http.request.method"] == "GET" and a["http.response.status_code"] == 200


def test_header_capture_with_sanitising(spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
                       "x-custom-.*, content-type, authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
                       "x-mixin,Content-Type")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "authoriz.*")
    dj_settings.reload()
    Client().post("/items/", data="{}", content_type="application/json",
                  HTTP_X_CUSTOM_TENANT="acme", HTTP_AUTHORIZATION="Bearer secret-token",
                  HTTP_X_OTHER="not captured")
    a = server_span(spans).attributes
    assert a["http.request.header.x_custom_tenant"] == ("acme",)
    assert a["http.request.header.content_type"] == ("application/json",)
    assert a["http.request.header.authorization"] == ("[REDACTED]",)
    assert "http.request.header.x_other" not in a
    assert a["http.response.header.x_mixin"] == ("1",)
    assert a["http.response.header.content_type"] == ("text/html; charset=utf-8",)
    assert "secret-token" not in str(a)


def test_no_header_captured_by_default(spans):
    Client().get("/items/1/", HTTP_X_CUSTOM_TENANT="acme")
    assert not [k for k in server_span(spans).attributes if ".header." in k]


# -- excluded URLs ---------------------------------------------------------------------------

def test_excluded_urls_from_the_environment_make_nothing(spans, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "healthz,ping")
    dj_settings.reload()
    assert Client().get("/healthz/").status_code == 200
    assert spans.spans == []  # no request span, no middleware, view or cache span
    Client().get("/items/1/")
    assert server_span(spans).name == "GET items/<int:pk>/"


def test_generic_excluded_urls_variable_is_the_fallback(spans, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", r"items/\d+")
    dj_settings.reload()
    Client().get("/items/9/")
    Client().get("/page/")
    assert [s.name for s in spans.spans if s.kind is SpanKind.SERVER] == ["GET page/"]


def test_excluded_urls_from_the_setting(spans):
    with override_settings(DJTRACE={"excluded_urls": [r"/healthz/$", "^https://"]}):
        Client().get("/healthz/")
        Client().get("/page/", secure=True)  # https://testserver/page/ matches ^https://
        Client().get("/page/")
    assert [s.name for s in spans.spans if s.kind is SpanKind.SERVER] == ["GET page/"]


def test_excluded_request_suppresses_children(spans, monkeypatch):
    """Work done inside an excluded request (cache, templates, a user's span) makes no orphan
    root span: the request runs with djtrace's and OpenTelemetry's suppression flags set."""
    from project.web.views import PROBES

    from djtrace.integrations import _suppress

    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "healthz")
    dj_settings.reload()
    PROBES.clear()
    before = context_api.get_current()
    Client().get("/healthz/")
    Client().get("/healthz/")
    assert PROBES["health_suppressed"] is True
    assert spans.spans == []
    assert _suppress.suppressed() is False  # restored after the request
    assert context_api.get_current() == before
    # What runs in it has a parent that is valid, local, not sampled and not recording, a new
    # trace per request, and OpenTelemetry's own suppression flag.
    (first, second) = PROBES["health_parents"]
    assert first[:4] == second[:4] == (True, 0, False, False)
    assert first[5] is True and second[5] is True
    assert first[4] != second[4]


def test_excluded_request_that_raises_restores_the_context(spans, monkeypatch):
    from djtrace.integrations import _suppress

    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "boom")
    dj_settings.reload()
    before = context_api.get_current()
    with pytest.raises(RuntimeError):
        Client(raise_request_exception=True).get("/boom/")
    assert spans.spans == []
    assert _suppress.suppressed() is False
    assert context_api.get_current() == before


def test_environment_replaces_the_setting(spans, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "page")
    with override_settings(DJTRACE={"excluded_urls": "items"}):
        dj_settings.reload()
        Client().get("/items/1/")
        Client().get("/page/")
    assert [s.name for s in spans.spans if s.kind is SpanKind.SERVER] == [
        "GET items/<int:pk>/"]


# -- users -----------------------------------------------------------------------------------

def _user(username="alice"):
    return User.objects.create_user(username, password="pw-1234")


def test_enduser_id_once_authenticated(spans):
    user = _user()
    client = Client()
    client.force_login(user)
    spans.clear()
    client.get("/whoami/")
    assert server_span(spans).attributes["enduser.id"] == str(user.pk)


def test_no_enduser_for_anonymous_requests(spans):
    Client().get("/whoami/")
    assert "enduser.id" not in server_span(spans).attributes


def test_enduser_never_costs_a_query_the_view_did_not_make(spans, django_assert_num_queries):
    user = _user()
    client = Client()
    client.force_login(user)
    # The view never touches request.user: reading it for enduser.id would load the session
    # and the user.
    with django_assert_num_queries(0):
        client.get("/untouched/")
    span = [s for s in spans.spans if s.kind is SpanKind.SERVER][-1]
    assert "enduser.id" not in span.attributes


def test_capture_enduser_can_be_switched_off(spans):
    user = _user()
    client = Client()
    client.force_login(user)
    with override_settings(DJTRACE={"capture_enduser": False}):
        spans.clear()
        client.get("/whoami/")
    assert "enduser.id" not in server_span(spans).attributes


def test_login_logout_and_failed_login_become_events(spans):
    user = _user()
    client = Client()
    client.post("/login/", {"username": "alice", "password": "wrong-password"})
    client.post("/login/", {"username": "alice", "password": "pw-1234"})
    client.get("/logout/")
    servers = [s for s in spans.spans if s.kind is SpanKind.SERVER]
    failed, ok, out = servers
    assert [e.name for e in failed.events] == ["user_login_failed"]
    assert dict(failed.events[0].attributes) == {}
    assert [e.name for e in ok.events] == ["user_logged_in"]
    assert ok.events[0].attributes["enduser.id"] == str(user.pk)
    assert ok.attributes["enduser.id"] == str(user.pk)
    assert [e.name for e in out.events] == ["user_logged_out"]
    text = str([(e.name, dict(e.attributes)) for s in servers for e in s.events])
    assert "wrong-password" not in text and "pw-1234" not in text and "alice" not in text


def test_auth_events_can_be_switched_off(spans):
    _user()
    with override_settings(DJTRACE={"auth_events": False}):
        Client().post("/login/", {"username": "alice", "password": "nope"})
    assert server_span(spans).events == ()


# -- streaming, files, async -----------------------------------------------------------------

def test_streaming_response_span_ends_after_the_body(spans):
    response = Client().get("/stream/")
    assert spans.by_name("GET stream/") == []  # not ended until the body is consumed
    body = b"".join(response.streaming_content)
    assert body == b"chunk0\nchunk1\nchunk2\n"
    request = spans.one("GET stream/")
    gets = spans.by_name("cache.get")
    assert len(gets) == 3
    # Made while the body was produced, still children of the request span.
    for get in gets:
        assert get.parent.span_id == request.context.span_id
        assert get.end_time <= request.end_time


def test_streaming_response_failure_marks_the_request(spans):
    response = Client().get("/stream-error/")
    with pytest.raises(ValueError):
        b"".join(response.streaming_content)
    span = spans.one("GET stream-error/")
    assert span.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in span.events] == ["ValueError"]


def test_file_response_span_ends_when_closed(spans):
    response = Client().get("/download/")
    assert spans.by_name("GET download/") == []
    assert len(b"".join(response.streaming_content)) == 10000
    span = spans.one("GET download/")
    assert span.attributes["http.response.status_code"] == 200


def test_async_view_through_the_async_client(spans):
    async def go():
        return await AsyncClient().get("/async/")

    response = asyncio.run(go())
    assert response.json() == {"value": "default"}
    request = spans.one("GET async/")
    view = spans.one("async_view")
    assert spans.parent_of(view).kind is SpanKind.INTERNAL  # the innermost middleware
    get = spans.one("cache.get")
    assert get.parent.span_id == view.context.span_id
    assert {s.context.trace_id for s in spans.spans} == {request.context.trace_id}


def test_async_streaming_through_the_async_client(spans):
    async def go():
        response = await AsyncClient().get("/astream/")
        return b"".join([chunk async for chunk in response.streaming_content])

    assert asyncio.run(go()) == b"achunk0\nachunk1\nachunk2\n"
    request = spans.one("GET astream/")
    gets = spans.by_name("cache.get")
    assert len(gets) == 3
    assert all(g.parent.span_id == request.context.span_id for g in gets)
