"""djtrace.testing: the span-capture helpers."""

from __future__ import annotations

import pytest
from django.test import Client
from opentelemetry import trace

from djtrace.testing import (
    SpanNode,
    capture_spans,
    captured_spans,  # noqa: F401 - the fixture, imported as a plugin would
)

tracer = trace.get_tracer("tests")


def test_capture_sees_only_spans_ending_inside():
    with tracer.start_as_current_span("before"):
        pass
    with capture_spans() as captured:
        with tracer.start_as_current_span("a"):
            with tracer.start_as_current_span("b"):
                pass
    with tracer.start_as_current_span("after"):
        pass
    assert captured.names() == ["b", "a"]  # in the order they ended
    assert len(captured) == 2
    assert captured.one("a").name == "a"
    assert captured.parent_of(captured.one("b")).name == "a"
    assert captured.children(captured.one("a"))[0].name == "b"


def test_nested_captures():
    with capture_spans() as outer:
        with tracer.start_as_current_span("first"):
            pass
        with capture_spans() as inner:
            with tracer.start_as_current_span("second"):
                pass
        with tracer.start_as_current_span("third"):
            pass
    assert outer.names() == ["first", "second", "third"]
    assert inner.names() == ["second"]


def test_clear_while_open_and_after():
    with capture_spans() as captured:
        with tracer.start_as_current_span("x"):
            pass
        captured.clear()
        assert captured.spans == []
        with tracer.start_as_current_span("y"):
            pass
    assert captured.names() == ["y"]
    captured.clear()
    assert captured.names() == []


def test_tree_and_format():
    with capture_spans() as captured:
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span("one"):
                with tracer.start_as_current_span("leaf"):
                    pass
            with tracer.start_as_current_span("two", attributes={"k": 1}):
                pass
        with tracer.start_as_current_span("other root"):
            pass
    roots = captured.tree()
    assert all(isinstance(r, SpanNode) for r in roots)
    assert [r.names() for r in roots] == [
        ["root", [["one", [["leaf", []]]], ["two", []]]], ["other root", []]]
    assert [n.name for n in roots[0].walk()] == ["root", "one", "leaf", "two"]
    text = captured.format_tree(attributes=True)
    assert text.splitlines() == ["root [INTERNAL]", "  one [INTERNAL]", "    leaf [INTERNAL]",
                                 "  two [INTERNAL] k=1", "other root [INTERNAL]"]


def test_one_fails_clearly():
    with capture_spans() as captured:
        pass
    with pytest.raises(AssertionError, match="expected one span 'missing', got 0"):
        captured.one("missing")


@pytest.mark.django_db
def test_fixture_from_the_plugin(captured_spans):  # noqa: F811 - the imported fixture
    Client().get("/plain/")
    assert captured_spans.one("GET plain/").attributes["http.response.status_code"] == 200
