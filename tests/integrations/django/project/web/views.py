"""Views exercising every layer the Django integration traces."""

import asyncio
import io

from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from project.web.models import Note
from project.web.serializers import EchoSerializer, NoteSerializer
from project.web.signals import order_placed
from rest_framework import permissions, throttling, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView


def index(request):
    """A template with extends and includes, two cache calls, a few queries."""
    cache.set("index:greeting", "hello", 30)
    greeting = cache.get("index:greeting")
    users = User.objects.count()
    notes = list(Note.objects.all()[:3])
    return render(request, "web/index.html",
                  {"title": greeting, "items": [users, len(notes)]})


def bench_page(request):
    """The benchmark's page: about six queries, a template with an include, two cache calls."""
    cache.set("bench:visits", 1, 30)
    cache.get("bench:visits")
    users = User.objects.count()
    notes = list(Note.objects.order_by("id")[:5])
    first = Note.objects.filter(id__gte=1).first()
    owners = Note.objects.filter(owner__isnull=True).count()
    exists = User.objects.filter(username="nobody").exists()
    titles = list(Note.objects.values_list("title", flat=True)[:3])
    return render(request, "web/page.html",
                  {"title": f"{users} {len(notes)} {first} {owners} {exists} {titles}"})


def plain(request):
    """No database, no template: for servers run without a migrated database."""
    cache.get("plain:key")
    return HttpResponse("plain")


def page(request):
    return render(request, "web/page.html", {"title": "page"})


def item_detail(request, pk):
    return JsonResponse({"id": pk, "q": request.GET.get("q")})


class ItemView(View):
    def get(self, request):
        return HttpResponse("items")

    def post(self, request):
        return HttpResponse("created", status=201)


def boom(request):
    raise RuntimeError("the view failed")


def not_found(request):
    raise Http404("no such thing")


def forbidden(request):
    raise PermissionDenied("not yours")


def bad_request(request):
    return HttpResponseBadRequest("bad")


def unavailable(request):
    return HttpResponse("later", status=503)


def _chunks():
    for i in range(3):
        cache.get(f"stream:{i}")
        yield f"chunk{i}\n".encode()


def stream(request):
    return StreamingHttpResponse(_chunks())


def _failing_chunks():
    yield b"first\n"
    raise ValueError("stream broke")


def stream_error(request):
    return StreamingHttpResponse(_failing_chunks())


async def _achunks():
    for i in range(3):
        await asyncio.sleep(0)
        await cache.aget(f"astream:{i}")
        yield f"achunk{i}\n".encode()


async def astream(request):
    return StreamingHttpResponse(_achunks())


async def slow_async(request):
    await asyncio.sleep(float(request.GET.get("seconds", "3")))
    return HttpResponse("finally")


def download(request):
    return FileResponse(io.BytesIO(b"x" * 10000), filename="data.bin")


async def async_view(request):
    await asyncio.sleep(0)
    value = await cache.aget("async:key", "default")
    return JsonResponse({"value": value})


def jinja_page(request):
    return render(request, "web/page.jinja", {"title": "jinja"}, using="jinja2")


def template_response(request):
    return TemplateResponse(request, "web/page.html", {"title": "deferred"})


@csrf_exempt
def login_view(request):
    user = authenticate(request, username=request.POST.get("username"),
                        password=request.POST.get("password"))
    if user is None:
        return HttpResponse("denied", status=401)
    login(request, user)
    return HttpResponse("welcome")


def logout_view(request):
    logout(request)
    return HttpResponse("bye")


def whoami(request):
    return HttpResponse(request.user.username if request.user.is_authenticated else "anonymous")


def untouched_user(request):
    return HttpResponse("did not look at request.user")


def run_command(request):
    from django.core.management import call_command

    call_command("process_things", verbosity=0)
    return HttpResponse("ran")


def send_signal(request):
    order_placed.send(sender=None, order_id=1)
    return HttpResponse("sent")


def current_baggage(request):
    from opentelemetry import baggage, trace

    span = trace.get_current_span()
    ctx = span.get_span_context()
    return JsonResponse({"baggage": dict(baggage.get_all()),
                         "trace_id": f"{ctx.trace_id:032x}"})


PROBES = {}


def context_probe(request):
    """What application code sees of the current span: directly, through the Context, in a
    span of its own, a cache call inside that span, and a thread given a copy of the context."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from opentelemetry import context, trace

    tracer = trace.get_tracer("user-code")
    current = trace.get_current_span()
    PROBES["view_current"] = current.get_span_context().span_id
    in_context = trace.get_current_span(context.get_current())
    PROBES["view_context"] = in_context.get_span_context().span_id
    import djtrace

    PROBES["request_span"] = djtrace.request_span().get_span_context().span_id
    with tracer.start_as_current_span("user work"):
        cache.get("probe")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(contextvars.copy_context().run,
                    lambda: tracer.start_as_current_span("in pool").__enter__().end()).result()
    PROBES["after"] = trace.get_current_span().get_span_context().span_id
    return HttpResponse("ok")


def health(request):
    from djtrace.integrations import _suppress

    PROBES["health_suppressed"] = _suppress.suppressed()
    cache.get("health")  # inside an excluded request: must not make a span
    from opentelemetry import context, trace

    current = trace.get_current_span()
    ctx = current.get_span_context()
    PROBES.setdefault("health_parents", []).append(
        (ctx.is_valid, int(ctx.trace_flags), ctx.is_remote, current.is_recording(),
         ctx.trace_id, context.get_value(context._SUPPRESS_INSTRUMENTATION_KEY)))

    with trace.get_tracer("user-code").start_as_current_span("user span"):
        pass
    return HttpResponse("ok")


def many_cache_reads(request):
    key = request.GET.get("key", "hot:key")
    for _ in range(6):
        cache.get(key)
    cache.get("cold:key")
    return HttpResponse("read")


class NoteViewSet(viewsets.ModelViewSet):
    queryset = Note.objects.all().order_by("id")
    serializer_class = NoteSerializer


class BurstThrottle(throttling.BaseThrottle):
    def allow_request(self, request, view):
        return request.GET.get("throttle") != "1"

    def wait(self):
        return 1.0


class ProtectedView(APIView):
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [BurstThrottle]

    def get(self, request):
        return Response({"user": request.user.username})


class ThrottledView(APIView):
    throttle_classes = [BurstThrottle]

    def get(self, request):
        return Response({"ok": True})


class EchoView(APIView):
    def post(self, request):
        serializer = EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.data)


class FailingApiView(APIView):
    def get(self, request):
        raise RuntimeError("api broke")
