"""Spans that native hooks make current without setting the context variable (deferred attach).

traced_call (the wrapper of middleware, views, templates and cache calls) pushes its span on a
native list instead of copying the Context and setting OpenTelemetry's variable. Everything that
reads the current span or Context must still see it exactly as if it had been attached.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context, trace

from djtrace import _native
from djtrace.sdk import _context

from ._helpers import run_threads

traced_call = _native.traced_call


@pytest.fixture(autouse=True)
def _nothing_left_deferred():
    assert _native.deferred_span_count() == 0
    yield
    assert _native.deferred_span_count() == 0, "a deferred span was not popped"


def _spans(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


def _spans_of_view(tracer, exporter, view):
    """`view` run as traced_call runs a view (a hook span) inside a request span; the spans."""
    with tracer.start_as_current_span("request"):
        traced_call(tracer, "view", None, 0, view)
    return _spans(exporter)


def test_the_runtime_context_is_the_deferred_one():
    assert isinstance(context._RUNTIME_CONTEXT, _context.DeferredSpansRuntimeContext)


def test_the_api_sees_the_deferred_span(tracer, exporter):
    seen = {}

    def body():
        span = trace.get_current_span()
        seen["span"] = span
        seen["in_context"] = trace.get_current_span(context.get_current()) is span
        seen["same_context"] = context.get_current() is context.get_current()
        return 42

    with tracer.start_as_current_span("request") as request:
        assert traced_call(tracer, "hook", None, 0, body) == 42
        assert trace.get_current_span() is request
    spans = _spans(exporter)
    assert seen["span"].get_span_context().span_id == spans["hook"].context.span_id
    assert seen["in_context"] and seen["same_context"]
    assert spans["hook"].parent.span_id == request.get_span_context().span_id


def test_a_hook_span_object_is_made_once_and_only_when_asked_for(tracer, exporter):
    # A hook span starts without a Python object; a child hook finds it as its parent without
    # making one. The first get_current_span() makes it, later ones return the same object, and
    # what the application records on it reaches the exported span.
    seen = []

    def body():
        traced_call(tracer, "child", None, 0, lambda: None)
        seen.append(_native.hook_span_objects())
        span = trace.get_current_span()
        span.set_attribute("app.key", "v")
        span.add_event("app.event")
        span.update_name("renamed")
        seen.extend([span, trace.get_current_span(), _native.hook_span_objects()])
        traced_call(tracer, "after", None, 0, lambda: None)

    made = _native.hook_span_objects()
    with tracer.start_as_current_span("request"):
        traced_call(tracer, "hook", None, 0, body)
    before, first, second, after = seen
    assert before == made
    assert first is second and after == made + 1
    spans = _spans(exporter)
    assert "hook" not in spans
    assert spans["renamed"].attributes["app.key"] == "v"
    assert [e.name for e in spans["renamed"].events] == ["app.event"]
    assert spans["child"].parent.span_id == spans["renamed"].context.span_id
    assert spans["after"].parent.span_id == spans["renamed"].context.span_id
    assert first.get_span_context().span_id == spans["renamed"].context.span_id
    assert not first.is_recording()  # ended with its hook


def test_a_hook_span_is_read_safely_from_a_greenlet_that_runs_over_its_hooks_stack(tracer,
                                                                                  exporter):
    # greenlet runs the greenlets of a thread on one C stack, saving and restoring slices of it.
    # Greenlet A waits inside a hook; B, started like A from the main greenlet (so on the same
    # stack region) and given the same context, nests hooks there (native frames over A's) and
    # then starts one whose parent lookup reads A's deferred hook span.
    import greenlet

    main = greenlet.getcurrent()
    parents = {}

    def a_body():
        main.switch()

    def b_innermost():
        parents["b.inner"] = trace.get_current_span().get_span_context().span_id

    def b_body(depth):
        if depth:
            return traced_call(tracer, f"b.{depth}", None, 0, b_body, depth - 1)
        return traced_call(tracer, "b.inner", None, 0, b_innermost)

    a = greenlet.greenlet(lambda: traced_call(tracer, "a.hook", None, 0, a_body))
    b = greenlet.greenlet(lambda: b_body(30))
    with tracer.start_as_current_span("request"):
        a.gr_context = contextvars.copy_context()
        b.gr_context = a.gr_context
        a.switch()  # A enters its hook and comes back here, its hook span still current
        b.switch()  # B runs to its end over the stack A occupied
        a.switch()  # A leaves its hook
    spans = _spans(exporter)
    assert a.dead and b.dead
    chain, span = [], spans["b.30"]
    while span.parent is not None:
        chain.append(span.parent.span_id)
        span = next(s for s in spans.values() if s.context.span_id == span.parent.span_id)
    assert spans["a.hook"].context.span_id == chain[0]  # B's outermost hook: under A's, as a
    # thread given a copy of the context would see it
    assert span.name == "request"
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert parents["b.inner"] == spans["b.inner"].context.span_id


def test_nested_hooks_and_application_spans_parent_correctly(tracer, exporter):
    def cache_call():
        with tracer.start_as_current_span("app.inner"):
            pass
        return trace.get_current_span()

    def view():
        with tracer.start_as_current_span("app.outer") as outer:
            inner_current = traced_call(tracer, "cache", None, 0, cache_call)
            assert trace.get_current_span() is outer
        return inner_current

    with tracer.start_as_current_span("request"):
        current_in_cache = traced_call(tracer, "middleware", None, 0,
                                       traced_call, tracer, "view", None, 0, view)
    spans = _spans(exporter)

    def parent(name):
        return next(n for n, s in spans.items() if s.context.span_id == spans[name].parent.span_id)

    assert parent("middleware") == "request"
    assert parent("view") == "middleware"
    assert parent("app.outer") == "view"
    assert parent("cache") == "app.outer"
    assert parent("app.inner") == "cache"
    assert current_in_cache.get_span_context().span_id == spans["cache"].context.span_id


def test_values_attached_inside_a_hook_keep_the_span_and_hide_nothing(tracer, exporter):
    key = context.create_key("djtrace-test")

    def body():
        hook = trace.get_current_span()
        token = context.attach(context.set_value(key, "v"))
        try:
            both = (context.get_value(key), trace.get_current_span() is hook)
        finally:
            context.detach(token)
        return both, context.get_value(key), trace.get_current_span() is hook

    with tracer.start_as_current_span("request"):
        result = traced_call(tracer, "hook", None, 0, body)
    assert result == (("v", True), None, True)


def test_an_exception_pops_the_span_and_is_recorded(tracer, exporter):
    def body():
        raise KeyError("boom")

    with tracer.start_as_current_span("request") as request:
        with pytest.raises(KeyError):
            traced_call(tracer, "hook", None, 0, body)
        assert trace.get_current_span() is request
    hook = _spans(exporter)["hook"]
    assert hook.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in hook.events] == ["exception"]


def test_a_thread_given_a_copy_of_the_context_sees_the_hook_span(tracer, exporter):
    def in_thread(name):
        with tracer.start_as_current_span(name):
            pass

    def view():
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(in_thread, "copied"))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, in_thread, f"pool-{i}")
                       for i in range(2)]
            for f in futures:
                f.result()
        plain = threading.Thread(target=in_thread, args=("plain",))
        plain.start()
        plain.join()

    spans = _spans_of_view(tracer, exporter, view)
    view_id = spans["view"].context.span_id
    for name in ("copied", "pool-0", "pool-1"):
        assert spans[name].parent.span_id == view_id, name
    assert spans["plain"].parent is None  # a thread without the context starts its own trace


def test_a_thread_runs_its_own_hooks_beside_the_callers(tracer, exporter):
    def worker(n):
        with tracer.start_as_current_span(f"job-{n}"):
            traced_call(tracer, f"cache-{n}", None, 0,
                        lambda: tracer.start_span(f"leaf-{n}").end())

    def view():
        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(contextvars.copy_context().run, worker, n) for n in range(3)]:
                f.result()

    spans = _spans_of_view(tracer, exporter, view)
    for n in range(3):
        assert spans[f"job-{n}"].parent.span_id == spans["view"].context.span_id
        assert spans[f"cache-{n}"].parent.span_id == spans[f"job-{n}"].context.span_id
        assert spans[f"leaf-{n}"].parent.span_id == spans[f"cache-{n}"].context.span_id


def test_concurrent_threads_keep_their_own_hook_nesting(tracer, exporter):
    threads, rounds = 6, 40
    errors: list[str] = []

    def worker(n):
        for i in range(rounds):
            def inner(n=n, i=i):
                current = trace.get_current_span()
                tracer.start_span(f"leaf-{n}-{i}").end()
                return current

            def outer(n=n, i=i):
                mine = trace.get_current_span()
                seen = traced_call(tracer, f"inner-{n}-{i}", None, 0, inner)
                if trace.get_current_span() is not mine:
                    errors.append(f"thread {n} lost its outer hook span")
                return seen

            with tracer.start_as_current_span(f"root-{n}-{i}"):
                traced_call(tracer, f"outer-{n}-{i}", None, 0, outer)

    run_threads(worker, threads)
    assert errors == []
    spans = _spans(exporter)
    for n in range(threads):
        for i in range(rounds):
            root, outer = spans[f"root-{n}-{i}"], spans[f"outer-{n}-{i}"]
            inner, leaf = spans[f"inner-{n}-{i}"], spans[f"leaf-{n}-{i}"]
            assert outer.parent.span_id == root.context.span_id
            assert inner.parent.span_id == outer.context.span_id
            assert leaf.parent.span_id == inner.context.span_id
            assert len({root.context.trace_id, outer.context.trace_id,
                        inner.context.trace_id, leaf.context.trace_id}) == 1


def test_asyncio_inside_a_hook(tracer, exporter):
    async def job(n):
        assert trace.get_current_span().get_span_context().span_id == view_id[0]
        await asyncio.sleep(0)
        with tracer.start_as_current_span(f"task-{n}"):
            await asyncio.sleep(0)
            traced_call(tracer, f"cache-{n}", None, 0, lambda: None)

    async def main():
        await asyncio.gather(*(job(n) for n in range(3)))

    view_id = []

    def view():
        view_id.append(trace.get_current_span().get_span_context().span_id)
        asyncio.run(main())

    spans = _spans_of_view(tracer, exporter, view)
    for n in range(3):
        assert spans[f"task-{n}"].parent.span_id == spans["view"].context.span_id
        assert spans[f"cache-{n}"].parent.span_id == spans[f"task-{n}"].context.span_id


def test_outside_any_span_a_hook_is_a_root_only_for_its_own_thread(tracer, exporter):
    """Threads that never set the variable share its default: they must not share hook spans."""
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def hold():
        inside.set()
        release.wait(10)

    holder = threading.Thread(target=traced_call, args=(tracer, "held", None, 0, hold))
    holder.start()
    inside.wait(10)
    try:
        def other():
            seen["current"] = trace.get_current_span()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["main"] = trace.get_current_span()
    finally:
        release.set()
        holder.join()
    assert seen["current"] is trace.INVALID_SPAN
    assert seen["main"] is trace.INVALID_SPAN
    assert _spans(exporter)["held"].parent is None


def test_a_forked_child_forgets_the_hooks_of_threads_it_does_not_have(tracer, exporter):
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=traced_call,
                              args=(tracer, "held", None, 0, lambda: (inside.set(),
                                                                      release.wait(10))))
    holder.start()
    inside.wait(10)
    try:
        def in_parent_hook():
            assert _native.deferred_span_count() == 2
            pid = os.fork()
            if pid == 0:  # the child: only this thread, and its own hook span, survive
                ok = (_native.deferred_span_count() == 1
                      and trace.get_current_span().get_span_context().span_id == hook_id[0])
                os._exit(0 if ok else 1)
            return os.waitpid(pid, 0)[1]

        hook_id = []
        status = traced_call(tracer, "forking", None, 0, lambda: (
            hook_id.append(trace.get_current_span().get_span_context().span_id),
            in_parent_hook())[1])
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0
