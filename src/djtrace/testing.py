"""Test helpers: capture the spans your code makes and assert on them.

    from djtrace.testing import capture_spans

    def test_order_page(client):
        with capture_spans() as captured:
            client.get("/orders/")
        request = captured.by_name("GET orders/")[0]
        assert captured.children(request)
        print(captured.format_tree())

With pytest, the fixture `captured_spans` offers the same: `pytest_plugins =
["djtrace.testing"]` in the top-level conftest.py, or `from djtrace.testing import
captured_spans` in a conftest or test module.

The spans come from the global djtrace tracer provider (the one djtrace.configure() or the
Django app installed), through an in-memory processor added to it once (processors cannot be
removed: spans that end while no capture is open are held natively until the next capture
starts, then dropped). Captures may nest; each sees the spans that ended while it was open,
also after it closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CapturedSpans", "SpanNode", "capture_spans", "captured_spans"]


# ---------------------------------------------------------------------------------------------
# Span capture

class _Collector:
    """One native in-memory exporter per provider; spans are moved out of it into `buffer` on
    demand, and dropped while no capture is open."""

    def __init__(self, provider: Any) -> None:
        from djtrace.sdk.trace.export import InMemorySpanExporter, SimpleSpanProcessor

        self.exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.buffer: list = []
        self.base = 0  # index in the whole stream of buffer[0]
        self.open: list[int] = []  # start positions of the open captures
        self.lock = threading.Lock()

    def drain(self) -> None:
        from djtrace.sdk.trace import ReadableSpan

        taken = self.exporter._exporter.take()  # noqa: SLF001 - the native exporter
        if taken:
            self.buffer.extend(ReadableSpan(d) for d in taken)

    def position(self) -> int:
        return self.base + len(self.buffer)

    def begin(self) -> int:
        with self.lock:
            if not self.open:
                self.exporter.clear()
                self.base += len(self.buffer)
                self.buffer = []
            else:
                self.drain()
            start = self.position()
            self.open.append(start)
            return start

    def end(self, start: int) -> None:
        with self.lock:
            self.drain()
            self.open.remove(start)
            if not self.open:
                self.base += len(self.buffer)
                self.buffer = []
                self.exporter.clear()

    def since(self, start: int) -> list:
        with self.lock:
            self.drain()
            return self.buffer[max(start - self.base, 0):]


_collectors: dict[int, _Collector] = {}
_collectors_lock = threading.Lock()


def _provider() -> Any:
    from opentelemetry import trace as trace_api

    from djtrace.sdk.trace import TracerProvider

    provider = trace_api.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    import djtrace

    if isinstance(djtrace._provider, TracerProvider):  # noqa: SLF001
        return djtrace._provider  # noqa: SLF001
    raise RuntimeError(
        "djtrace.testing needs a djtrace tracer provider: add 'djtrace' to INSTALLED_APPS or "
        "call djtrace.configure() (OTEL_SDK_DISABLED must not be true)")


def _collector() -> _Collector:
    provider = _provider()
    with _collectors_lock:
        collector = _collectors.get(id(provider))
        if collector is None:
            collector = _collectors[id(provider)] = _Collector(provider)
        return collector


class SpanNode:
    """A span in a tree of captured spans."""

    __slots__ = ("span", "children")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.children: list[SpanNode] = []

    @property
    def name(self) -> str:
        return self.span.name

    def names(self) -> list:
        """[name, [child names ...]] recursively: convenient for asserting a tree's shape."""
        return [self.name, [c.names() for c in self.children]]

    def walk(self) -> Iterator[SpanNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def render(self, indent: int = 0, attributes: bool = False) -> str:
        kind = self.span.kind.name
        line = "  " * indent + f"{self.name} [{kind}]"
        if attributes and self.span.attributes:
            line += " " + ", ".join(f"{k}={v!r}" for k, v in sorted(self.span.attributes.items()))
        return "\n".join([line] + [c.render(indent + 1, attributes) for c in self.children])

    def __repr__(self) -> str:
        return f"SpanNode({self.name!r}, {len(self.children)} children)"


class CapturedSpans:
    """The spans that ended while a capture was open, in the order they ended."""

    def __init__(self, collector: _Collector, start: int) -> None:
        self._collector = collector
        self._start = start
        self._opened_at = start
        self._frozen: list | None = None  # what was captured, once the capture closed

    @property
    def spans(self) -> list:
        if self._frozen is not None:
            return list(self._frozen)
        return self._collector.since(self._start)

    def clear(self) -> None:
        """Forgets what was captured so far (the capture stays open if it was)."""
        if self._frozen is not None:
            self._frozen = []
            return
        with self._collector.lock:
            self._collector.drain()
            self._start = self._collector.position()

    def _close(self) -> None:
        self._frozen = self._collector.since(self._start)
        self._collector.end(self._opened_at)

    def by_name(self, name: str) -> list:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> Any:
        """The only span called `name` (AssertionError otherwise)."""
        found = self.by_name(name)
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        return [s.name for s in self.spans]

    def children(self, parent: Any) -> list:
        """The captured spans whose parent is `parent`, by start time."""
        sid = parent.context.span_id
        return sorted((s for s in self.spans if s.parent is not None and s.parent.span_id == sid),
                      key=lambda s: s.start_time)

    def parent_of(self, span: Any) -> Any:
        if span.parent is None:
            return None
        for s in self.spans:
            if s.context.span_id == span.parent.span_id:
                return s
        return None

    def tree(self) -> list[SpanNode]:
        """The captured spans as trees: one SpanNode per span whose parent was not captured,
        children by start time."""
        spans = self.spans
        nodes = {s.context.span_id: SpanNode(s) for s in spans}
        roots = []
        for s in sorted(spans, key=lambda s: s.start_time):
            node = nodes[s.context.span_id]
            parent = nodes.get(s.parent.span_id) if s.parent is not None else None
            if parent is None:
                roots.append(node)
            else:
                parent.children.append(node)
        return roots

    def format_tree(self, attributes: bool = False) -> str:
        return "\n".join(root.render(0, attributes) for root in self.tree())

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.spans)


@contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Captures the spans that end within the block (see CapturedSpans)."""
    collector = _collector()
    captured = CapturedSpans(collector, collector.begin())
    try:
        yield captured
    finally:
        captured._close()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional
    pytest = None

if pytest is not None:

    @pytest.fixture
    def captured_spans() -> Iterator[CapturedSpans]:
        """The spans that end during the test (see capture_spans)."""
        with capture_spans() as captured:
            yield captured


# ---------------------------------------------------------------------------------------------
# Queries and N+1 (djtrace.integrations.django.db)

class QueryReport:
    """What the queries of a block did, as the database integration counted them natively:
    works with DEBUG=False and whatever spans the queries belong to."""

    def __init__(self, collector: Any) -> None:
        self._collector = collector

    @property
    def count(self) -> int:
        """Queries executed in the block."""
        return self._collector.query_count

    @property
    def duplicates(self) -> int:
        """Executions in the block that repeated an earlier one of the block exactly (same SQL
        text, same parameters; compared by a native hash, never exported)."""
        return self._collector.duplicate_count

    @property
    def duration_ms(self) -> float:
        return self._collector.duration_ms

    @property
    def errors(self) -> int:
        return self._collector.error_count

    @property
    def queries(self) -> list:
        """One dict per query: sql (obfuscated), summary, duration_ms, filepath, lineno,
        function, relation; and template, template_lineno for a query that a Django template
        node made."""
        return self._collector.queries()

    @property
    def n_plus_one(self) -> list:
        """The N+1 groups found during the block, in any request, command or span root, and
        among queries outside any root: dicts with kind ("n_plus_one"), sql, summary, count,
        duration_ms, filepath, lineno, function, relation; and template, template_lineno when
        a Django template node made the queries."""
        return self._collector.findings()

    @property
    def repeated_task_sends(self) -> list:
        """The Celery tasks sent repeatedly from one call site within one root during the block
        (see djtrace.integrations.celery): dicts with kind ("repeated_task_send"), task_name,
        count, filepath, lineno, function."""
        return self._collector.task_send_findings()

    @property
    def findings(self) -> list:
        """Everything the N+1 helpers fail on: n_plus_one, then repeated_task_sends."""
        return self.n_plus_one + self.repeated_task_sends

    def describe(self) -> str:
        lines = []
        for q in self.queries:
            where = f"{q['filepath']}:{q['lineno']}" if q["filepath"] else "?"
            if q.get("template"):
                where += f" (template {q['template']} line {q['template_lineno']})"
            via = f" [{q['relation']}]" if q["relation"] else ""
            lines.append(f"  {q['summary'] or q['sql'][:60]}  at {where}{via}")
        return "\n".join(lines)


def _collect() -> Any:
    from djtrace.integrations.django import db

    return db.collect_queries()


@contextmanager
def capture_queries() -> Iterator[QueryReport]:
    """Counts the queries run within the block:

        with capture_queries() as q:
            client.get("/orders/")
        assert q.count == 2 and not q.n_plus_one
    """
    with _collect() as collector:
        yield QueryReport(collector)


def _n_plus_one_message(report: QueryReport) -> str:
    from djtrace.integrations.django.db import describe_finding

    lines = []
    for title, findings in (("N+1 queries detected:", report.n_plus_one),
                            ("Repeated task sends detected:", report.repeated_task_sends)):
        if findings:
            lines += [title] + ["  " + describe_finding(f) for f in findings]
    return "\n".join(lines)


@contextmanager
def assert_no_n_plus_one() -> Iterator[QueryReport]:
    """Fails (AssertionError) when an N+1 happens within the block; the message names the ORM
    relation, the call site and the SQL of each one. The threshold is DJTRACE's
    n_plus_one_threshold (default 5 executions of one statement from one line). One Celery task
    sent repeatedly from one line counts too (task_send_repeat_threshold, default 5)."""
    with _collect() as collector:
        report = QueryReport(collector)
        yield report
    if report.findings:
        raise AssertionError(_n_plus_one_message(report))


@contextmanager
def assert_num_queries(expected: int) -> Iterator[QueryReport]:
    """Fails unless exactly `expected` queries run within the block (lists them if not)."""
    with _collect() as collector:
        report = QueryReport(collector)
        yield report
    if report.count != expected:
        raise AssertionError(
            f"expected {expected} queries, {report.count} ran:\n{report.describe()}")


@contextmanager
def assert_max_queries(maximum: int) -> Iterator[QueryReport]:
    """Fails when more than `maximum` queries run within the block."""
    with _collect() as collector:
        report = QueryReport(collector)
        yield report
    if report.count > maximum:
        raise AssertionError(
            f"expected at most {maximum} queries, {report.count} ran:\n{report.describe()}")


__all__ += ["QueryReport", "assert_max_queries", "assert_no_n_plus_one", "assert_num_queries",
            "capture_queries", "no_n_plus_one", "query_report"]

if pytest is not None:

    @pytest.fixture
    def no_n_plus_one() -> Iterator[QueryReport]:
        """Fails the test if it runs an N+1 (see assert_no_n_plus_one)."""
        with assert_no_n_plus_one() as report:
            yield report

    @pytest.fixture
    def query_report() -> Iterator[QueryReport]:
        """The queries the test runs (see capture_queries)."""
        with capture_queries() as report:
            yield report
