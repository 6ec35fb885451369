"""Query source (code.filepath / code.lineno / code.function): the native frame walk finds the
first application frame and the line it is executing, through generators, lambdas, methods,
coroutines, threads and library frames, up to its depth limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django
import pytest
from _dbhelpers import db_spans, line_of, make_shop

from djtrace import _native

pytestmark = pytest.mark.django_db

HERE = Path(__file__)
MAX_FRAMES = 128  # kMaxFrames in native/python/db_bindings.cc

# Library frames: code compiled under Django's directory, which the walk skips (the file need not
# exist: only the code's file name counts).
_LIB: dict = {}
exec(
    compile(
        "def descend(n, fn):\n"
        "    if n <= 1:\n"
        "        return fn()\n"
        "    return descend(n - 1, fn)\n"
        "def handler(request):\n"
        "    return db_call_site()\n"
        "def passing(request):\n"
        "    return request, db_call_site()\n"
        "def tracer(frame, event, arg):\n"
        "    if event == 'line' and frame.f_code is TRACED[0]:\n"
        "        SEEN.append((db_call_site(), frame.f_lineno))\n"
        "    return tracer\n",
        os.path.join(os.path.dirname(django.__file__), "_djtrace_test_library.py"),
        "exec",
    ),
    _LIB,
)
_LIB["db_call_site"] = _native.db_call_site
through_library = _LIB["descend"]  # through_library(n, fn): fn() under n library frames


def here(frame) -> tuple:
    """What the walk must report for `frame`, by Python's own account."""
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname)


def query_site(span) -> tuple:
    a = span.attributes
    return (a["code.filepath"], a["code.lineno"], a["code.function"])


@pytest.fixture
def shop(spans):
    make_shop()
    spans.clear()


# An ORM query in a generator of a method, consumed through two levels of application code.
class Reports:
    def names(self):
        return list(self._rows())

    def _rows(self):
        from project.shop.models import Customer

        for customer in Customer.objects.order_by("id"):  # query: generator
            yield customer.name


def _outer_helper():
    return _inner_helper()


def _inner_helper():
    return Reports().names()


def test_orm_query_in_a_generator_of_a_method_under_two_helpers(shop, spans):
    assert len(_outer_helper()) == 6
    [q] = db_spans(spans)
    assert query_site(q) == (str(HERE), line_of("generator", HERE), "Reports._rows")


def test_orm_query_in_a_lambda_called_by_the_standard_library(shop, spans):
    from project.shop.models import Customer

    found = []
    with contextlib.ExitStack() as stack:  # calls the lambda from contextlib's frames
        stack.callback(lambda: found.append(Customer.objects.count()))  # query: lambda
    assert found == [6]
    [q] = db_spans(spans)
    assert query_site(q) == (
        str(HERE),
        line_of("lambda", HERE),
        "test_orm_query_in_a_lambda_called_by_the_standard_library.<locals>.<lambda>",
    )


def test_orm_query_under_deep_application_recursion(shop, spans):
    from project.shop.models import Customer

    def recurse(n):
        if n:
            return recurse(n - 1)
        return Customer.objects.filter(name__startswith="c").count()  # query: recursion

    recurse(40)
    [q] = db_spans(spans)
    assert query_site(q) == (
        str(HERE),
        line_of("recursion", HERE),
        "test_orm_query_under_deep_application_recursion.<locals>.recurse",
    )


def _execute_in_worker():
    info = _native.DbConnInfo("postgresql", "postgresql", "shop", "db.internal", 5433, "default")
    execute = _native.db_execute
    return execute(info, lambda *a: "ok", "SELECT 1", None, False, {})  # query: thread


def test_query_from_a_thread(spans):
    # The worker's frames (threading, concurrent.futures) are the standard library's; the
    # thread's own stack ends there, at the first frame it ran.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(_execute_in_worker).result() == "ok"
        site = pool.submit(lambda: (_native.db_call_site(), here(sys._getframe()))).result()
    [q] = db_spans(spans)
    assert query_site(q) == (str(HERE), line_of("thread", HERE), "_execute_in_worker")
    assert site[0] == site[1]


def test_call_site_is_the_line_executing_in_every_kind_of_frame(spans):
    def plain():
        return _native.db_call_site(), here(sys._getframe())

    def generator():
        yield _native.db_call_site(), here(sys._getframe())
        yield through_library(5, lambda: (_native.db_call_site(), here(sys._getframe())))

    async def coroutine():
        await asyncio.sleep(0)
        return _native.db_call_site(), here(sys._getframe())

    async def async_generator():
        yield _native.db_call_site(), here(sys._getframe())

    async def consume():
        return [x async for x in async_generator()]

    class Service:
        @classmethod
        def run(cls):
            return through_library(10, plain)

    results = [
        plain(),
        through_library(20, plain),
        Service.run(),
        *generator(),
        asyncio.run(coroutine()),
        *asyncio.run(consume()),
    ]
    for site, expected in results:
        assert site == expected
    # The lambda in the generator is the application frame of its own call.
    assert results[4][0][2].endswith("generator.<locals>.<lambda>")


def test_many_call_sites_in_one_function_each_keep_their_line(spans):
    # One function issuing queries from 300 lines, in turn and over again: every line found is
    # the one executing, whether the walk computes it or has it remembered (up to 256 per code
    # object, then it starts over).
    lines = ["def sites():", "    found = []"]
    for _ in range(300):
        lines.append("    found.append((db_call_site(), here(sys._getframe())))")
    lines.append("    return found")
    namespace = {"db_call_site": _native.db_call_site, "here": here, "sys": sys}
    exec(compile("\n".join(lines), str(HERE.parent / "_many_sites.py"), "exec"), namespace)
    for _ in range(3):
        found = namespace["sites"]()
        assert len(found) == 300
        for site, expected in found:
            assert site == expected
        assert len({site[1] for site, _ in found}) == 300


def test_depth_limit(spans):
    def probe():
        # The walk starts at the innermost frame: the library frame that calls db_call_site.
        return through_library(depth, _native.db_call_site), sys._getframe().f_lineno

    depth = MAX_FRAMES - 1  # the application frame is the last one the walk looks at
    site, line = probe()
    assert site == (str(HERE), line, "test_depth_limit.<locals>.probe")
    depth = MAX_FRAMES  # ...and now one too far
    assert probe()[0] is None


def test_frame_under_a_tracer(spans):
    # A debugger or tracer in a library (pdb, coverage's Python tracer) makes queries while
    # the application frame it traces is stopped at a line.
    def traced():
        a = 1
        b = a + 1
        return b

    _LIB["TRACED"], _LIB["SEEN"] = [traced.__code__], []
    sys.settrace(_LIB["tracer"])
    try:
        traced()
    finally:
        sys.settrace(None)
    seen = _LIB["SEEN"]
    first = traced.__code__.co_firstlineno
    assert [line for _, line in seen] == [first + 1, first + 2, first + 3]
    function = "test_frame_under_a_tracer.<locals>.traced"
    assert [site for site, _ in seen] == [(str(HERE), line, function) for _, line in seen]


def test_greenlets(spans):
    import greenlet  # requirements/test.txt

    def run():
        first = (_native.db_call_site(), here(sys._getframe()))
        greenlet.getcurrent().parent.switch()
        return [first, (through_library(3, _native.db_call_site), here(sys._getframe()))]

    g = greenlet.greenlet(run)
    g.switch()
    between = (_native.db_call_site(), here(sys._getframe()))
    for site, expected in [*g.switch(), between]:
        assert site == expected


def test_no_references_kept(spans):
    def probe():
        return _native.db_call_site()

    for _ in range(10):
        through_library(30, probe)
    before = sys.getrefcount(probe.__code__), sys.getrefcount(through_library.__code__)
    for _ in range(1000):
        through_library(30, probe)
    assert (sys.getrefcount(probe.__code__), sys.getrefcount(through_library.__code__)) == before


def test_repeated_statements_keep_each_call_sites_attributes(shop, spans):
    # A statement's attributes are built once per call site and shared by its spans: every
    # span must still carry the whole set, with its own line, and nothing of another's.
    from project.shop.models import Customer

    for _ in range(3):
        Customer.objects.filter(name="Customer 1").first()  # query: shared-a
        Customer.objects.filter(name="Customer 2").first()  # query: shared-b
    Customer.objects.filter(name="x").first()  # query: shared-a-again
    queries = db_spans(spans)
    assert len(queries) == 7
    lines = [q.attributes["code.lineno"] for q in queries]
    a, b, again = (line_of(m, HERE) for m in ("shared-a", "shared-b", "shared-a-again"))
    assert lines == [a, b, a, b, a, b, again]
    first = dict(queries[0].attributes)
    for q in queries:
        attrs = dict(q.attributes)
        assert attrs.keys() == first.keys()
        for key in ("db.query.text", "db.system.name", "db.operation.name",
                    "db.collection.name", "code.filepath", "code.function"):
            assert attrs[key] == first[key], key
        assert "'" not in attrs["db.query.text"] and "Customer 1" not in attrs["db.query.text"]
    assert len({q.context.span_id for q in queries}) == 7


def test_a_jinja2_template_is_the_call_site_with_its_own_line(shop, spans):
    # Jinja2 compiles a template to Python code whose file name is the template's but whose
    # line numbers are the generated module's: they are mapped back to the template's lines.
    from django.template import engines
    from opentelemetry import trace
    from project.shop.models import Order

    from djtrace.integrations.django import db

    template = engines["jinja2"].get_template("web/orders.jinja")
    path = template.template.filename
    [line] = [n for n, text in enumerate(Path(path).read_text().splitlines(), 1)
              if "order.customer.name" in text]
    with trace.get_tracer("tests").start_as_current_span("page"):
        template.render({"orders": list(Order.objects.order_by("id"))})
        stats = db.query_stats()
    lazy = [s for s in db_spans(spans.spans) if s.attributes.get("djtrace.orm.relation")]
    assert len(lazy) == 6
    for span in lazy:
        # The generated function ("root") means nothing to the template's author: the
        # template's name stands in, and the template attributes are those of Django's engine.
        assert query_site(span) == (path, line, "web/orders.jinja")
        assert span.attributes["djtrace.template.name"] == "web/orders.jinja"
        assert span.attributes["djtrace.template.lineno"] == line
    [finding] = stats["findings"]
    assert (finding["filepath"], finding["lineno"], finding["function"]) == (
        path, line, "web/orders.jinja")
    assert (finding["template"], finding["template_lineno"]) == ("web/orders.jinja", line)
    assert f" from {path}:{line} in web/orders.jinja (" in db.describe_finding(finding)



def test_a_django_template_adds_its_name_and_line_to_the_call_site(shop, spans):
    # Django's engine renders templates in Django's own code: the call site stays the line that
    # rendered the template, and the template node that made the query adds its template and
    # line (the innermost one: the included or extended template's own, here a block).
    from django.template import engines
    from opentelemetry import trace
    from project.shop.models import Order

    from djtrace.integrations.django import db

    template = engines["django"].get_template("web/orders.html")
    path = Path(template.origin.name)
    [line] = [n for n, text in enumerate(path.read_text().splitlines(), 1)
              if "order.customer.name" in text]
    with trace.get_tracer("tests").start_as_current_span("page"):
        render_line = sys._getframe().f_lineno + 1
        template.render({"orders": list(Order.objects.order_by("id"))})
        stats = db.query_stats()
    lazy = [s for s in db_spans(spans.spans) if s.attributes.get("djtrace.orm.relation")]
    assert len(lazy) == 6
    for span in lazy:
        assert query_site(span) == (
            __file__, render_line, "test_a_django_template_adds_its_name_and_line_to_the_call_site")
        assert span.attributes["djtrace.template.name"] == "web/orders.html"
        assert span.attributes["djtrace.template.lineno"] == line
    [finding] = stats["findings"]
    assert (finding["template"], finding["template_lineno"]) == ("web/orders.html", line)
    assert f"test_query_source.py:{render_line} in test_a_django_template_adds_its_name_and_" \
        f"line_to_the_call_site, template web/orders.html line {line} (" in \
        db.describe_finding(finding)
    # Queries of the view itself, outside the template, carry no template.
    [listing] = [s for s in db_spans(spans.spans) if s.name == "SELECT orders"]
    assert "djtrace.template.name" not in listing.attributes


@pytest.mark.django_db(transaction=True)  # the request's thread reads the committed shop
def test_a_generic_views_template_locates_its_queries(shop, spans):
    # Behind a generic view, a server's stack holds no frame of the application's but those of
    # its own middleware, passing the request on (the thread running the request here starts
    # in the standard library): there is no call site, and the template says where the
    # queries come from.
    import threading

    from django.test import Client

    from djtrace.integrations.django import db

    worker = threading.Thread(target=Client().get, args=("/shop/orders/generic/",))
    worker.start()
    worker.join()
    path = Path(__file__).parent / "project" / "web" / "templates" / "web" / "orders.html"
    [line] = [n for n, text in enumerate(path.read_text().splitlines(), 1)
              if "order.customer.name" in text]
    lazy = [s for s in db_spans(spans.spans) if s.attributes.get("djtrace.orm.relation")]
    assert len(lazy) == 6
    for span in lazy:
        assert "code.filepath" not in span.attributes  # not the middleware's get_response line
        assert span.attributes["djtrace.template.name"] == "web/orders.html"
        assert span.attributes["djtrace.template.lineno"] == line
    [request] = [s for s in spans.spans if s.name == "GET shop/orders/generic/"]
    [event] = [e for e in request.events if e.name == "djtrace.n_plus_one"]
    assert event.attributes["djtrace.template.lineno"] == line
    # Without any frame of the application's, the template alone locates the finding.
    finding = {"kind": "n_plus_one", "sql": "SELECT ...", "count": 6, "duration_ms": 1.0,
               "filepath": None, "relation": "Order.customer", "template": "web/orders.html",
               "template_lineno": line}
    assert f"from an unknown call site, template web/orders.html line {line} (" in \
        db.describe_finding(finding)


def test_a_middleware_passing_the_request_on_is_not_the_call_site():
    # A project's middleware is a frame of the application's under every view: while it calls
    # get_response, what runs below (here a library handler) is not the middleware's doing.
    from djtrace.integrations.django.middleware import get_response_calls, register_pass_through

    class Timing:
        def __init__(self, get_response):
            self.get_response = get_response

        def __call__(self, request):
            own = _native.db_call_site()  # the middleware's own work
            return own, self.get_response(request)

    def function_middleware(get_response):
        def middleware(request):
            return get_response(request)
        return middleware

    timing = Timing(_LIB["handler"])
    function = function_middleware(_LIB["handler"])
    assert len(get_response_calls(Timing.__call__.__code__)) == 1
    assert len(get_response_calls(function.__code__)) == 1
    register_pass_through(timing)  # as load_middleware's wrapper does
    register_pass_through(function)
    own_line = Timing.__call__.__code__.co_firstlineno + 1
    [(own, below)] = [timing(None)]
    here_line = sys._getframe().f_lineno - 1
    assert own == (str(HERE), own_line, "test_a_middleware_passing_the_request_on_is_not_the_"
                   "call_site.<locals>.Timing.__call__")
    # Below the middleware, the next frame of the application's: this test's line.
    test_name = "test_a_middleware_passing_the_request_on_is_not_the_call_site"
    assert below == (str(HERE), here_line, test_name)
    assert function(None) == (str(HERE), sys._getframe().f_lineno, test_name)

    # A call in get_response's arguments is the middleware's own work, not passing on.
    class Preparing:
        def __init__(self, get_response):
            self.get_response = get_response

        def __call__(self, request):
            return self.get_response(_LIB["handler"](request))

    preparing = Preparing(_LIB["passing"])
    assert len(get_response_calls(Preparing.__call__.__code__)) == 1
    register_pass_through(preparing)
    own, below = preparing(None)
    assert below == (str(HERE), sys._getframe().f_lineno - 1, test_name)
    assert own == (str(HERE), Preparing.__call__.__code__.co_firstlineno + 1,
                   f"{test_name}.<locals>.Preparing.__call__")


@pytest.mark.django_db(transaction=True)  # the request's thread reads the committed shop
def test_a_drf_generic_views_n_plus_one_is_not_the_middlewares(shop, spans):
    # The classic DRF N+1: a nested field of a generic ListAPIView's serializer loads a
    # relation lazily; only DRF's and Django's code runs, under the project's middleware.
    import threading

    from django.test import Client

    worker = threading.Thread(target=Client().get, args=("/shop/api/orders/",))
    worker.start()
    worker.join()
    [request] = [s for s in spans.spans if s.name == "GET shop/api/orders/"]
    [event] = [e for e in request.events if e.name == "djtrace.n_plus_one"]
    assert event.attributes["djtrace.orm.relation"] == "Order.customer"
    assert "code.filepath" not in event.attributes
