"""The current span is a contextvar: isolated per thread and per asyncio task."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import context, trace

from ._helpers import run_threads


def test_new_thread_does_not_see_the_callers_span(setup):
    seen = {}

    def worker():
        seen["current"] = trace.get_current_span()
        with setup.tracer.start_as_current_span("in_thread") as span:
            seen["inside"] = trace.get_current_span() is span
        seen["after"] = trace.get_current_span()

    with setup.tracer.start_as_current_span("main") as main:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert trace.get_current_span() is main
    assert seen == {"current": trace.INVALID_SPAN, "inside": True, "after": trace.INVALID_SPAN}
    spans = setup.spans()
    assert spans["in_thread"].parent is None
    assert spans["in_thread"].context.trace_id != spans["main"].context.trace_id


def test_copied_context_carries_the_span_into_a_thread(setup):
    def worker():
        with setup.tracer.start_as_current_span("in_thread"):
            pass

    with setup.tracer.start_as_current_span("main") as main:
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(worker,))
        thread.start()
        thread.join()
        # The same with OpenTelemetry's own API, through an executor.
        otel_ctx = context.get_current()

        def attached_worker():
            token = context.attach(otel_ctx)
            try:
                with setup.tracer.start_as_current_span("in_pool"):
                    pass
            finally:
                context.detach(token)

        with ThreadPoolExecutor(1) as pool:
            pool.submit(attached_worker).result()
    spans = setup.spans()
    for name in ("in_thread", "in_pool"):
        assert spans[name].parent.span_id == main.get_span_context().span_id
        assert spans[name].context.trace_id == main.get_span_context().trace_id


def test_concurrent_threads_keep_their_own_nesting(setup):
    threads, rounds = 8, 50
    errors: list[str] = []

    def worker(n):
        for i in range(rounds):
            with setup.tracer.start_as_current_span(f"outer-{n}-{i}", attributes={"t": n}) as outer:
                with setup.tracer.start_as_current_span(f"inner-{n}-{i}", attributes={"t": n}):
                    if trace.get_current_span().get_span_context().trace_id != \
                            outer.get_span_context().trace_id:
                        errors.append(f"thread {n} saw a foreign span")
                if trace.get_current_span() is not outer:
                    errors.append(f"thread {n} lost its outer span")
        if trace.get_current_span() is not trace.INVALID_SPAN:
            errors.append(f"thread {n} leaked a span")

    run_threads(worker, threads)
    assert errors == []
    spans = setup.spans()
    assert len(spans) == threads * rounds * 2
    for n in range(threads):
        for i in range(rounds):
            outer, inner = spans[f"outer-{n}-{i}"], spans[f"inner-{n}-{i}"]
            assert outer.parent is None
            assert inner.parent.span_id == outer.context.span_id
            assert inner.context.trace_id == outer.context.trace_id
            assert inner.attributes["t"] == outer.attributes["t"] == n


def test_asyncio_tasks_keep_their_own_nesting(setup):
    async def job(n):
        with setup.tracer.start_as_current_span(f"task-{n}") as mine:
            for step in range(3):
                await asyncio.sleep(0.001 * ((n + step) % 3))
                assert trace.get_current_span() is mine
                with setup.tracer.start_as_current_span(f"step-{n}-{step}"):
                    await asyncio.sleep(0)
                assert trace.get_current_span() is mine
        return mine

    async def main():
        with setup.tracer.start_as_current_span("request") as request:
            tasks = await asyncio.gather(*(job(n) for n in range(5)))
            assert trace.get_current_span() is request
            detached = asyncio.create_task(job(99))
        # A task created under the span keeps it even after the creator left the block.
        await detached
        assert trace.get_current_span() is trace.INVALID_SPAN
        return request, tasks

    request, tasks = asyncio.run(main())
    spans = setup.spans()
    request_id = request.get_span_context().span_id
    for n in list(range(5)) + [99]:
        task = spans[f"task-{n}"]
        assert task.parent.span_id == request_id
        for step in range(3):
            assert spans[f"step-{n}-{step}"].parent.span_id == task.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {request.get_span_context().trace_id}


def test_span_attached_in_a_task_does_not_leak_to_the_caller(setup):
    async def child():
        with setup.tracer.start_as_current_span("in_task"):
            await asyncio.sleep(0)

    async def main():
        before = trace.get_current_span()
        await asyncio.create_task(child())
        return before, trace.get_current_span()

    before, after = asyncio.run(main())
    assert before is after is trace.INVALID_SPAN


def test_exiting_in_another_context_does_not_corrupt_the_current_span(setup):
    """A generator-held span closed from elsewhere must not break the caller's nesting."""
    def spans_in_generator():
        with setup.tracer.start_as_current_span("gen"):
            yield 1
            yield 2

    gen = spans_in_generator()
    with setup.tracer.start_as_current_span("outer") as outer:
        next(gen)
        with setup.tracer.start_as_current_span("inner") as inner:
            assert trace.get_current_span() is inner
        gen.close()
    assert trace.get_current_span() is trace.INVALID_SPAN
    spans = setup.spans()
    assert spans["gen"].parent.span_id == outer.get_span_context().span_id


def test_span_ended_on_another_thread(setup):
    span = setup.tracer.start_span("cross_thread")
    with trace.use_span(span):
        child = setup.tracer.start_span("child")
    threads = [threading.Thread(target=s.end) for s in (child, span)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = setup.spans()
    assert set(spans) == {"cross_thread", "child"}
    assert spans["child"].parent.span_id == span.get_span_context().span_id
