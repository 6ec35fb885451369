"""The native fast paths of the Django integration: middleware proxies and traced_call under a
provider that is not djtrace's, and requests sampled out doing no per-layer work."""

from __future__ import annotations

from test_activation import run_django


def test_layers_nest_under_the_official_sdk_provider():
    # The middleware proxies and traced_call hand over to the OpenTelemetry API when the tracer
    # is not djtrace's native one: same spans, same nesting, errors recorded the Django way.
    result = run_django("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        provider = TracerProvider()
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        import django
        django.setup()
        from django.test import Client
        assert Client().get("/page/?q=1&api_key=k").status_code == 200
        spans = memory.get_finished_spans()
        by_id = {s.context.span_id: s for s in spans}
        def chain(span):
            names = []
            while span is not None:
                names.append(span.name)
                span = by_id.get(span.parent.span_id) if span.parent else None
            return names
        [template] = [s for s in spans if s.name == "render web/page.html"]
        path = chain(template)
        print(path[0], path[1], path[-1])
        print(sum(1 for n in path if n.startswith("django.")) >= 5)
        print(len({s.context.trace_id for s in spans}))
        [server] = [s for s in spans if s.kind == trace.SpanKind.SERVER]
        a = server.attributes
        print(a["http.request.method"], a["url.path"], a["url.query"], a["server.port"],
              a["http.route"], a["http.response.status_code"])
        memory.clear()
        assert Client().get("/plain/").status_code == 200  # no database: any test run
        spans = memory.get_finished_spans()
        by_id = {s.context.span_id: s for s in spans}
        print(sorted((s.name, by_id[s.parent.span_id].name, s.attributes.get("cache.hit"))
                     for s in spans if s.name.startswith("cache.")))
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == ["render web/page.html page GET page/", "True", "1",
                     "GET /page/ q=1&api_key=REDACTED 80 page/ 200",
                     "[('cache.get', 'plain', False)]"]


def test_the_sampler_decides_before_the_request_attributes_are_read(tmp_path):
    # The request span's sampling is decided before its attributes are built (skipped for a
    # request that is not recorded): at a ratio of one half, every recorded request span has
    # its name and attributes, and recorded and dropped requests add up.
    result = run_django("""
        from opentelemetry import trace
        from djtrace.sdk.trace import TracerProvider
        from djtrace.sdk.trace.export import InMemorySpanExporter, SimpleSpanProcessor
        from djtrace.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        import django
        from django.conf import settings
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
        django.setup()
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        from djtrace.integrations.django import _state, setup
        _state.reset_tracer()
        setup()
        from django.test import Client
        for i in range(40):
            assert Client().get(f"/page/?q={i}").status_code == 200
        servers = [s for s in memory.get_finished_spans() if s.kind.name == "SERVER"]
        print(len(servers), provider._counters()["spans_sampled_out"])
        for s in servers:
            print(s.name, s.attributes.get("http.route"), s.attributes.get("url.query"),
                  s.attributes.get("http.response.status_code"), len(s.attributes), sep="|")
    """, env={"DJTRACE_TEST_DB": "sqlite", "DJTRACE_TEST_SQLITE": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 0, result.stderr
    head, *rows = result.stdout.strip().splitlines()
    recorded, dropped = map(int, head.split())
    assert 0 < recorded < 40  # both outcomes (2^-40 odds against each)
    assert recorded + dropped >= 40  # each dropped request counts its span, at least
    assert len(rows) == recorded
    for row in rows:
        name, route, query, status, count = row.split("|")
        assert (name, route, status) == ("GET page/", "page/", "200")
        assert query.startswith("q=")
        assert int(count) >= 10


def test_a_sampled_out_request_starts_no_layer_spans(tmp_path):
    # At 10% sampling nine requests in ten are not recorded: middleware, view, template and
    # cache wrappers pass straight through, and queries are dropped before any SQL work. (A
    # database of its own: the PostgreSQL pass's test database exists only in its session.)
    result = run_django("""
        from opentelemetry import trace
        from djtrace.sdk.trace import TracerProvider
        from djtrace.sdk.trace.export import InMemorySpanExporter, SimpleSpanProcessor
        from djtrace.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
        import django
        from django.conf import settings
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "djtrace"]
        django.setup()
        from django.core.management import call_command
        call_command("migrate", run_syncdb=True, verbosity=0)
        from djtrace.integrations.django import setup
        out = []
        for sampler in (ParentBased(ALWAYS_OFF), ParentBased(ALWAYS_ON)):
            provider = TracerProvider(sampler=sampler)
            memory = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(memory))
            trace._TRACER_PROVIDER = None
            trace._TRACER_PROVIDER_SET_ONCE._done = False
            trace.set_tracer_provider(provider)
            from djtrace.integrations.django import _state, db
            _state.reset_tracer()
            setup()
            db.refresh()
            from django.test import Client
            assert Client().get("/bench/").status_code == 200
            c = provider._counters()
            out.append((len(memory.get_finished_spans()), c["spans_started"],
                        c["spans_sampled_out"]))
        print(out)
    """, env={"DJTRACE_TEST_DB": "sqlite", "DJTRACE_TEST_SQLITE": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 0, result.stderr
    (off_spans, off_started, off_dropped), (on_spans, on_started, on_dropped) = eval(
        result.stdout.strip())
    assert off_spans == 0 and on_dropped == 0
    # Sampled out: the request span and its six queries are counted, nothing else started.
    assert off_started == off_dropped == 7
    assert on_spans == on_started > 20


def test_a_recorded_request_makes_no_span_objects_for_its_hook_spans(tmp_path):
    # Middleware, view, template and cache spans start without a Python object, and the
    # queries under them find their parent natively: a request of the benchmark page makes
    # none, unless the application asks for the current span.
    result = run_django("""
        import django
        django.setup()
        from django.core.management import call_command
        call_command("migrate", run_syncdb=True, verbosity=0)
        from djtrace import _native
        from django.test import Client
        from opentelemetry import trace
        client = Client()
        assert client.get("/bench/").status_code == 200
        before = _native.hook_span_objects()
        assert client.get("/bench/").status_code == 200
        provider = trace.get_tracer_provider()
        provider.force_flush()
        print(_native.hook_span_objects() - before, provider._counters()["spans_started"] > 40)
    """, env={"DJTRACE_TEST_DB": "sqlite", "DJTRACE_TEST_SQLITE": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]
