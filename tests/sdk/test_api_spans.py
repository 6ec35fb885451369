"""The span API of opentelemetry-api, used unchanged on a djtrace TracerProvider.

Most tests run through each of djtrace's code paths (the `setup` fixture): the native one, one
with a span processor written in Python, and one with a sampler written in Python.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

import djtrace.sdk
from djtrace.sdk import ReadableSpan

from ._helpers import run_python


class BoomError(Exception):
    pass


class Interrupt(BaseException):
    """Not an Exception: start_as_current_span must let it through unrecorded."""


def remote_context(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                   sampled=True, state=None) -> SpanContext:
    return SpanContext(
        trace_id, span_id, is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        trace_state=state or TraceState(),
    )


# ------------------------------------------------------------------------------------------
# The global provider


def test_global_provider_is_djtrace(global_provider, exporter):
    assert trace.get_tracer_provider() is global_provider
    tracer = trace.get_tracer("my.library", "1.2.3",
                              schema_url="https://opentelemetry.io/schemas/1.21.0")
    assert isinstance(tracer, djtrace.sdk.Tracer)
    assert trace.get_tracer("my.library", "1.2.3",
                            schema_url="https://opentelemetry.io/schemas/1.21.0") is tracer
    with tracer.start_as_current_span("op") as span:
        assert isinstance(span, trace.Span)
    (finished,) = exporter.get_finished_spans()
    assert isinstance(finished, ReadableSpan)
    scope = finished.instrumentation_scope
    assert (scope.name, scope.version, scope.schema_url) == (
        "my.library", "1.2.3", "https://opentelemetry.io/schemas/1.21.0")
    resource = finished.resource.attributes
    assert resource["telemetry.sdk.name"] == "djtrace"
    assert resource["telemetry.sdk.language"] == "python"
    assert "service.name" in resource


def test_tracer_scope_attributes(global_provider, exporter):
    tracer = trace.get_tracer("scoped", attributes={"team": "payments"})
    with tracer.start_as_current_span("op"):
        pass
    (finished,) = exporter.get_finished_spans()
    assert dict(finished.instrumentation_scope.attributes) == {"team": "payments"}


def test_provider_from_entry_point():
    """OTEL_PYTHON_TRACER_PROVIDER=djtrace makes the API load djtrace's provider by itself."""
    out = run_python(
        """
        import json
        from opentelemetry import trace, propagate
        provider = trace.get_tracer_provider()
        with trace.get_tracer("app").start_as_current_span("op") as span:
            carrier = {}
            propagate.inject(carrier)
        print(json.dumps({"provider": type(provider).__module__ + "." + type(provider).__name__,
                          "recording": span.get_span_context().trace_flags.sampled,
                          "traceparent": carrier.get("traceparent", "")}))
        """,
        env={"OTEL_PYTHON_TRACER_PROVIDER": "djtrace"},
    )
    assert out["provider"] == "djtrace.sdk.trace.TracerProvider"
    assert out["recording"] is True
    assert out["traceparent"].endswith("-01")


def test_official_import_paths_exist():
    from djtrace.sdk.trace import SpanLimits, TracerProvider  # noqa: F401
    from djtrace.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: F401
    from djtrace.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from djtrace.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: F401

    assert InMemorySpanExporter is djtrace.sdk.InMemorySpanExporter


# ------------------------------------------------------------------------------------------
# Starting spans


def test_start_as_current_span_basics(setup):
    before = time.time_ns()
    with setup.tracer.start_as_current_span("op") as span:
        assert trace.get_current_span() is span
        assert span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid and not ctx.is_remote
        assert ctx.trace_flags.sampled
    after = time.time_ns()
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert not span.is_recording()
    assert span.get_span_context() == ctx
    finished = setup.spans()["op"]
    assert finished.context.trace_id == ctx.trace_id
    assert finished.context.span_id == ctx.span_id
    assert finished.context.trace_flags.sampled
    assert finished.parent is None
    assert finished.kind is SpanKind.INTERNAL
    assert before <= finished.start_time <= finished.end_time <= after
    assert finished.status.status_code is StatusCode.UNSET
    assert finished.events == () and finished.links == ()


def test_nested_spans_parent_ids(setup):
    with setup.tracer.start_as_current_span("root") as root:
        with setup.tracer.start_as_current_span("child") as child:
            assert trace.get_current_span() is child
            with setup.tracer.start_as_current_span("grandchild") as grandchild:
                assert trace.get_current_span() is grandchild
            assert trace.get_current_span() is child
            sibling = setup.tracer.start_span("sibling")
            sibling.end()
        assert trace.get_current_span() is root
    spans = setup.spans()
    ids = {name: s.context.span_id for name, s in spans.items()}
    assert len(set(ids.values())) == 4
    assert {s.context.trace_id for s in spans.values()} == {root.get_span_context().trace_id}
    assert spans["root"].parent is None
    assert spans["child"].parent.span_id == ids["root"]
    assert spans["grandchild"].parent.span_id == ids["child"]
    assert spans["sibling"].parent.span_id == ids["child"]
    assert not spans["child"].parent.is_remote
    # Ended innermost first.
    names = [s.name for s in setup.exporter.get_finished_spans()]
    assert names == ["grandchild", "sibling", "child", "root"]


def test_start_span_does_not_become_current(setup):
    with setup.tracer.start_as_current_span("outer") as outer:
        span = setup.tracer.start_span("detached")
        assert trace.get_current_span() is outer
        assert span.is_recording()
        # Used as a context manager, a started span ends on exit but is not made current.
        with span as entered:
            assert entered is span
            assert trace.get_current_span() is outer
        assert not span.is_recording()
    spans = setup.spans()
    assert spans["detached"].parent.span_id == outer.get_span_context().span_id


def test_explicit_context_argument(setup):
    with setup.tracer.start_as_current_span("a") as a:
        pass
    with setup.tracer.start_as_current_span("b"):
        in_a = setup.tracer.start_span("in_a", context=trace.set_span_in_context(a))
        in_a.end()
        rooted = setup.tracer.start_span("rooted", context=Context())
        rooted.end()
        with setup.tracer.start_as_current_span("as_current_in_a",
                                                context=trace.set_span_in_context(a)) as c:
            assert trace.get_current_span() is c
    spans = setup.spans()
    assert spans["in_a"].parent.span_id == a.get_span_context().span_id
    assert spans["in_a"].context.trace_id == a.get_span_context().trace_id
    assert spans["rooted"].parent is None
    assert spans["rooted"].context.trace_id != a.get_span_context().trace_id
    assert spans["as_current_in_a"].parent.span_id == a.get_span_context().span_id


@pytest.mark.parametrize("kind", list(SpanKind))
def test_span_kinds(setup, kind):
    with setup.tracer.start_as_current_span("current", kind=kind):
        pass
    setup.tracer.start_span("started", kind=kind).end()
    spans = setup.spans()
    assert spans["current"].kind is kind
    assert spans["started"].kind is kind


def test_explicit_start_and_end_time(setup):
    span = setup.tracer.start_span("timed", start_time=1_600_000_000_000_000_000)
    span.end(end_time=1_600_000_000_500_000_000)
    with setup.tracer.start_as_current_span("timed2", start_time=1_700_000_000_000_000_000):
        pass
    spans = setup.spans()
    assert spans["timed"].start_time == 1_600_000_000_000_000_000
    assert spans["timed"].end_time == 1_600_000_000_500_000_000
    assert spans["timed2"].start_time == 1_700_000_000_000_000_000
    assert spans["timed2"].end_time > 1_700_000_000_000_000_000


def assert_link(link, ctx, attributes):
    assert link.context.trace_id == ctx.trace_id
    assert link.context.span_id == ctx.span_id
    assert link.context.is_remote == ctx.is_remote
    assert link.context.trace_flags == ctx.trace_flags
    assert link.context.trace_state == ctx.trace_state
    assert dict(link.attributes) == attributes


def test_links_at_start(setup):
    # Flags and is_remote differ so that mixing them up shows.
    remote_unsampled = remote_context(state=TraceState([("vendor", "abc")]), sampled=False)
    with setup.tracer.start_as_current_span("other") as other:
        pass
    with setup.tracer.start_as_current_span(
        "linked",
        links=[Link(remote_unsampled, {"link.kind": "remote"}), Link(other.get_span_context())],
    ):
        pass
    setup.tracer.start_span("started", links=[Link(remote_unsampled)]).end()
    spans = setup.spans()
    first, second = spans["linked"].links
    assert_link(first, remote_unsampled, {"link.kind": "remote"})
    assert_link(second, other.get_span_context(), {})
    (only,) = spans["started"].links
    assert_link(only, remote_unsampled, {})


def test_add_link(setup):
    remote_unsampled = remote_context(span_id=0x1111111111111111, sampled=False,
                                      state=TraceState([("k", "v")]))
    local_sampled = SpanContext(0x1234, 0x5678, is_remote=False,
                                trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with setup.tracer.start_as_current_span("linked") as span:
        span.add_link(remote_unsampled, {"n": 3})
        span.add_link(local_sampled)
        span.add_link(trace.INVALID_SPAN_CONTEXT)  # no context and no attributes: ignored
    first, second = setup.spans()["linked"].links
    assert_link(first, remote_unsampled, {"n": 3})
    assert_link(second, local_sampled, {})


def test_update_name(setup):
    with setup.tracer.start_as_current_span("first") as span:
        span.update_name("renamed")
    assert list(setup.spans()) == ["renamed"]


# ------------------------------------------------------------------------------------------
# Attributes

VALID_ATTRIBUTES = {
    "str": "text",
    "empty_str": "",
    "unicode": "naïve ☃ \U0001F600",
    "bool_true": True,
    "bool_false": False,
    "int": 42,
    "negative": -7,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "float": 3.25,
    "float_int_valued": 2.0,
    "str_list": ["a", "b"],
    "bool_list": [True, False, True],
    "int_list": [1, 2, 3],
    "float_list": [1.5, -2.5],
    "str_tuple": ("x", "y"),
    "int_tuple": (4, 5),
    "empty_list": [],
}


def expected_value(value):
    return tuple(value) if isinstance(value, list) else value


def test_attributes_of_every_type(setup):
    with setup.tracer.start_as_current_span("at_start", attributes=VALID_ATTRIBUTES):
        pass
    with setup.tracer.start_as_current_span("one_by_one") as span:
        for key, value in VALID_ATTRIBUTES.items():
            span.set_attribute(key, value)
    with setup.tracer.start_as_current_span("all_at_once") as span:
        span.set_attributes(VALID_ATTRIBUTES)
    expected = {k: expected_value(v) for k, v in VALID_ATTRIBUTES.items()}
    for name, finished in setup.spans().items():
        attrs = dict(finished.attributes)
        assert attrs == expected, name
        # Types survive: bools stay bools, floats stay floats.
        for key, value in expected.items():
            assert type(attrs[key]) is type(value), (name, key)
            if isinstance(value, tuple):
                assert [type(v) for v in attrs[key]] == [type(v) for v in value], (name, key)


def test_attributes_from_any_mapping(setup):
    from collections import OrderedDict
    from types import MappingProxyType

    with setup.tracer.start_as_current_span("proxy", attributes=MappingProxyType({"a": 1})) as span:
        span.set_attributes(OrderedDict([("b", "x"), ("c", [1.5])]))
        span.add_event("e", MappingProxyType({"d": True}))
    finished = setup.spans()["proxy"]
    assert dict(finished.attributes) == {"a": 1, "b": "x", "c": (1.5,)}
    assert dict(finished.events[0].attributes) == {"d": True}


def test_attribute_overwrite_keeps_last_value(setup):
    with setup.tracer.start_as_current_span("op", attributes={"k": "start", "other": 1}) as span:
        span.set_attribute("k", 2)
        span.set_attributes({"k": [True]})
    assert dict(setup.spans()["op"].attributes) == {"other": 1, "k": (True,)}


class Opaque:
    pass


INVALID_VALUES = {
    "none": None,
    "dict": {"a": 1},
    "object": Opaque(),
    "set": {1, 2},
    "mixed_list": [1, "a"],
    "mixed_str_first": ["a", 1],
    "float_in_int_list": [1, 2.5],
    "bool_in_str_list": ["a", True],
    "none_in_list": [None, None],
    "nested_list": [[1], [2]],
    "list_of_dicts": [{"a": 1}],
    "too_big_int": 2**64,
}


def test_invalid_attribute_values_are_dropped_without_raising(setup):
    with setup.tracer.start_as_current_span(
        "at_start", attributes={"ok": 1, **INVALID_VALUES, "": "empty key"}
    ):
        pass
    with setup.tracer.start_as_current_span("one_by_one") as span:
        span.set_attribute("ok", 1)
        for key, value in INVALID_VALUES.items():
            span.set_attribute(key, value)
        span.set_attribute("", "empty key")
        span.set_attribute(None, "no key")
        span.set_attribute(5, "int key")
    with setup.tracer.start_as_current_span("all_at_once") as span:
        span.set_attributes({"ok": 1, **INVALID_VALUES, 7: "int key", "": "empty key"})
    with setup.tracer.start_as_current_span("events") as span:
        span.add_event("e", {"ok": 1, **INVALID_VALUES})
        span.add_link(remote_context(), {"ok": 1, **INVALID_VALUES})
    spans = setup.spans()
    for name in ("at_start", "one_by_one", "all_at_once", "events"):
        expected = {} if name == "events" else {"ok": 1}
        assert dict(spans[name].attributes) == expected, name
    assert dict(spans["events"].events[0].attributes) == {"ok": 1}
    assert dict(spans["events"].links[0].attributes) == {"ok": 1}


def test_invalid_value_does_not_replace_previous_value(setup):
    with setup.tracer.start_as_current_span("op") as span:
        span.set_attribute("k", "kept")
        span.set_attribute("k", {"not": "valid"})
    assert dict(setup.spans()["op"].attributes) == {"k": "kept"}


def test_attribute_values_are_copied(setup):
    values = ["a", "b"]
    with setup.tracer.start_as_current_span("op") as span:
        span.set_attribute("list", values)
        values.append("c")
    assert setup.spans()["op"].attributes["list"] == ("a", "b")


# ------------------------------------------------------------------------------------------
# Events


def test_add_event(setup):
    with setup.tracer.start_as_current_span("op") as span:
        span.add_event("plain")
        span.add_event("with_attrs", {"a": 1, "b": ["x"], "c": True})
        span.add_event("timed", timestamp=1_600_000_000_000_000_000)
        span.add_event("keyword", attributes={"k": 1.5}, timestamp=1_600_000_000_000_000_001)
    finished = setup.spans()["op"]
    events = finished.events
    assert [e.name for e in events] == ["plain", "with_attrs", "timed", "keyword"]
    assert dict(events[0].attributes) == {}
    assert finished.start_time <= events[0].timestamp <= finished.end_time
    assert dict(events[1].attributes) == {"a": 1, "b": ("x",), "c": True}
    assert events[2].timestamp == 1_600_000_000_000_000_000
    assert dict(events[3].attributes) == {"k": 1.5}
    assert events[3].timestamp == 1_600_000_000_000_000_001


# ------------------------------------------------------------------------------------------
# Status


def status_of(setup, name):
    status = setup.spans()[name].status
    return status.status_code, status.description


def test_set_status_forms(setup):
    with setup.tracer.start_as_current_span("status_object") as span:
        span.set_status(Status(StatusCode.ERROR, "bad thing"))
    with setup.tracer.start_as_current_span("status_code") as span:
        span.set_status(StatusCode.ERROR, "described")
    with setup.tracer.start_as_current_span("code_only") as span:
        span.set_status(StatusCode.ERROR)
    with setup.tracer.start_as_current_span("replaced") as span:
        span.set_status(StatusCode.ERROR, "first")
        span.set_status(Status(StatusCode.ERROR, "second"))
    with setup.tracer.start_as_current_span("unset_ignored") as span:
        span.set_status(StatusCode.ERROR, "kept")
        span.set_status(StatusCode.UNSET)
        span.set_status(Status(StatusCode.UNSET))
    with setup.tracer.start_as_current_span("ok") as span:
        span.set_status(Status(StatusCode.OK))
    with setup.tracer.start_as_current_span("ok_code") as span:
        span.set_status(StatusCode.OK)
    assert status_of(setup, "status_object") == (StatusCode.ERROR, "bad thing")
    assert status_of(setup, "status_code") == (StatusCode.ERROR, "described")
    assert status_of(setup, "code_only") == (StatusCode.ERROR, None)
    assert status_of(setup, "replaced") == (StatusCode.ERROR, "second")
    assert status_of(setup, "unset_ignored") == (StatusCode.ERROR, "kept")
    assert status_of(setup, "ok") == (StatusCode.OK, None)
    assert status_of(setup, "ok_code") == (StatusCode.OK, None)


def test_ok_status_is_final(setup):
    with setup.tracer.start_as_current_span("error_then_ok") as span:
        span.set_status(StatusCode.ERROR, "transient")
        span.set_status(StatusCode.OK)
        span.set_status(StatusCode.ERROR, "ignored")
        span.set_status(Status(StatusCode.ERROR, "ignored too"))
    with setup.tracer.start_as_current_span("ok_then_exception"):
        trace.get_current_span().set_status(Status(StatusCode.OK))
        with pytest.raises(BoomError):
            with setup.tracer.start_as_current_span("inner"):
                raise BoomError("x")
    assert status_of(setup, "error_then_ok") == (StatusCode.OK, None)
    assert status_of(setup, "inner") == (StatusCode.ERROR, "BoomError: x")
    assert status_of(setup, "ok_then_exception") == (StatusCode.OK, None)


# ------------------------------------------------------------------------------------------
# Exceptions


def exception_events(span):
    return [dict(e.attributes) for e in span.events if e.name == "exception"]


def test_record_exception_matches_official_sdk(setup, official):
    official_provider, official_memory = official()
    official_tracer = official_provider.get_tracer(__name__)

    def raise_nested():
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise BoomError("outer message") from exc

    try:
        raise_nested()
    except BoomError as exc:
        caught = exc
    for tracer in (setup.tracer, official_tracer):
        with tracer.start_as_current_span("recorded") as span:
            span.record_exception(caught)
            span.record_exception(ValueError("plain"),
                                  attributes={"extra": 1, "exception.message": "overridden"},
                                  timestamp=1_600_000_000_000_000_000, escaped=True)
    (mine,) = setup.exporter.get_finished_spans()
    (theirs,) = official_memory.get_finished_spans()
    assert exception_events(mine) == exception_events(theirs)
    assert [e.timestamp for e in mine.events][1] == 1_600_000_000_000_000_000
    first, second = exception_events(mine)
    assert first["exception.type"].endswith("BoomError")
    assert first["exception.type"] == f"{BoomError.__module__}.BoomError"
    assert first["exception.message"] == "outer message"
    assert first["exception.escaped"] == "False"
    stacktrace = first["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert "KeyError: 'inner'" in stacktrace  # the chained cause is formatted too
    assert stacktrace.rstrip().endswith("BoomError: outer message")
    assert second == {
        "exception.type": "ValueError",
        "exception.message": "overridden",
        "exception.stacktrace": "ValueError: plain\n",
        "exception.escaped": "True",
        "extra": 1,
    }
    # record_exception sets no status by itself.
    assert mine.status.status_code is StatusCode.UNSET


def test_exception_in_start_as_current_span(setup, official):
    official_provider, official_memory = official()
    results = []
    for tracer, memory in ((setup.tracer, setup.exporter),
                           (official_provider.get_tracer(__name__), official_memory)):
        with pytest.raises(BoomError, match="boom"):
            with tracer.start_as_current_span("failing"):
                raise BoomError("boom")
        assert trace.get_current_span() is trace.INVALID_SPAN
        (finished,) = memory.get_finished_spans()
        (event,) = exception_events(finished)
        assert "raise BoomError" in event.pop("exception.stacktrace")
        results.append((finished.status.status_code, finished.status.description, event,
                        finished.end_time is not None))
    mine, theirs = results
    assert mine == theirs
    assert mine[0] is StatusCode.ERROR
    assert mine[1] == "BoomError: boom"
    assert mine[2]["exception.escaped"] == "False"


def test_exception_in_started_span_used_as_context_manager(setup, official):
    official_provider, official_memory = official()
    results = []
    for tracer, memory in ((setup.tracer, setup.exporter),
                           (official_provider.get_tracer(__name__), official_memory)):
        with pytest.raises(BoomError):
            with tracer.start_span("failing"):
                raise BoomError("boom")
        (finished,) = memory.get_finished_spans()
        (event,) = exception_events(finished)
        event.pop("exception.stacktrace")
        results.append((finished.status.status_code, finished.status.description, event))
    assert results[0] == results[1]
    assert results[0][2]["exception.escaped"] == "True"


def test_exception_recording_can_be_disabled(setup):
    with pytest.raises(BoomError):
        with setup.tracer.start_as_current_span("quiet", record_exception=False,
                                                set_status_on_exception=False):
            raise BoomError("boom")
    with pytest.raises(BoomError):
        with setup.tracer.start_as_current_span("status_only", record_exception=False):
            raise BoomError("boom")
    with pytest.raises(BoomError):
        with setup.tracer.start_as_current_span("event_only", set_status_on_exception=False):
            raise BoomError("boom")
    with pytest.raises(BoomError):
        with setup.tracer.start_span("started_quiet", record_exception=False,
                                     set_status_on_exception=False):
            raise BoomError("boom")
    spans = setup.spans()
    assert spans["quiet"].events == ()
    assert spans["quiet"].status.status_code is StatusCode.UNSET
    assert spans["status_only"].events == ()
    assert spans["status_only"].status.status_code is StatusCode.ERROR
    assert len(exception_events(spans["event_only"])) == 1
    assert spans["event_only"].status.status_code is StatusCode.UNSET
    assert spans["started_quiet"].events == ()
    assert spans["started_quiet"].status.status_code is StatusCode.UNSET


def test_manual_status_is_not_overwritten_by_exception_after_ok(setup):
    with pytest.raises(BoomError):
        with setup.tracer.start_as_current_span("op") as span:
            span.set_status(StatusCode.OK)
            raise BoomError("late")
    finished = setup.spans()["op"]
    assert finished.status.status_code is StatusCode.OK
    assert len(exception_events(finished)) == 1


def test_base_exception_is_not_recorded_by_start_as_current_span(setup, official):
    """As opentelemetry-api's use_span: only Exception subclasses are recorded."""
    official_provider, official_memory = official()
    for tracer, memory in ((setup.tracer, setup.exporter),
                           (official_provider.get_tracer(__name__), official_memory)):
        with pytest.raises(Interrupt):
            with tracer.start_as_current_span("interrupted"):
                raise Interrupt()
        with pytest.raises(Interrupt):
            with tracer.start_span("started_interrupted"):
                raise Interrupt()
        spans = {s.name: s for s in memory.get_finished_spans()}
        assert spans["interrupted"].events == ()
        assert spans["interrupted"].status.status_code is StatusCode.UNSET
        assert spans["interrupted"].end_time is not None
        # Span.__exit__ records any exception, escaped.
        (event,) = exception_events(spans["started_interrupted"])
        assert event["exception.escaped"] == "True"
        assert spans["started_interrupted"].status.status_code is StatusCode.ERROR


# ------------------------------------------------------------------------------------------
# end_on_exit, decorators


def test_end_on_exit_false(setup):
    with setup.tracer.start_as_current_span("kept_open", end_on_exit=False) as span:
        assert trace.get_current_span() is span
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert span.is_recording()
    assert setup.exporter.get_finished_spans() == ()
    span.set_attribute("late", True)
    span.end()
    assert not span.is_recording()
    (finished,) = setup.exporter.get_finished_spans()
    assert finished.attributes["late"] is True


def test_end_on_exit_false_with_exception_still_records(setup):
    with pytest.raises(BoomError):
        with setup.tracer.start_as_current_span("kept_open", end_on_exit=False) as span:
            raise BoomError("x")
    assert span.is_recording()
    span.end()
    finished = setup.spans()["kept_open"]
    assert finished.status.status_code is StatusCode.ERROR
    assert len(exception_events(finished)) == 1


def test_decorator_on_sync_function(setup):
    calls = []

    @setup.tracer.start_as_current_span("decorated", kind=SpanKind.SERVER, attributes={"d": 1})
    def handler(x, *, y):
        """Docstring kept."""
        span = trace.get_current_span()
        calls.append(span)
        assert span.is_recording()
        if x < 0:
            raise BoomError("negative")
        return x + y

    assert handler.__name__ == "handler"
    assert handler.__doc__ == "Docstring kept."
    assert handler(1, y=2) == 3
    assert handler(5, y=5) == 10
    with pytest.raises(BoomError):
        handler(-1, y=0)
    assert trace.get_current_span() is trace.INVALID_SPAN
    finished = setup.exporter.get_finished_spans()
    assert [s.name for s in finished] == ["decorated"] * 3
    # A new span per call.
    assert len({s.context.span_id for s in finished}) == 3
    assert [s.context.span_id for s in finished] == [c.get_span_context().span_id for c in calls]
    assert all(s.kind is SpanKind.SERVER and s.attributes["d"] == 1 for s in finished)
    assert [s.status.status_code for s in finished] == [StatusCode.UNSET, StatusCode.UNSET,
                                                       StatusCode.ERROR]
    assert len(exception_events(finished[2])) == 1


def test_decorated_function_uses_current_span_at_call_time(setup):
    @setup.tracer.start_as_current_span("decorated")
    def work():
        return trace.get_current_span().get_span_context()

    with setup.tracer.start_as_current_span("caller_one") as one:
        work()
    with setup.tracer.start_as_current_span("caller_two") as two:
        work()
    decorated = [s for s in setup.exporter.get_finished_spans() if s.name == "decorated"]
    assert [s.parent.span_id for s in decorated] == [one.get_span_context().span_id,
                                                     two.get_span_context().span_id]


def test_decorator_on_async_function(setup):
    @setup.tracer.start_as_current_span("async_decorated")
    async def fetch(n):
        span = trace.get_current_span()
        await asyncio.sleep(0.001 * n)
        assert trace.get_current_span() is span
        if n == 0:
            raise BoomError("zero")
        return span.get_span_context().span_id

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"

    async def main():
        with setup.tracer.start_as_current_span("parent") as parent:
            ids = await asyncio.gather(fetch(3), fetch(1), fetch(2))
            with pytest.raises(BoomError):
                await fetch(0)
            assert trace.get_current_span() is parent
        return parent, ids

    parent, ids = asyncio.run(main())
    finished = [s for s in setup.exporter.get_finished_spans() if s.name == "async_decorated"]
    assert len(finished) == 4
    assert len({s.context.span_id for s in finished}) == 4
    assert set(ids) <= {s.context.span_id for s in finished}
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in finished)
    # Each span covers its own await: it ends after it started and after its sleep.
    by_id = {s.context.span_id: s for s in finished}
    for n, span_id in zip((3, 1, 2), ids, strict=True):
        span = by_id[span_id]
        assert span.end_time - span.start_time >= n * 0.001 * 1e9 * 0.9
    assert finished[3].status.status_code is StatusCode.ERROR


# ------------------------------------------------------------------------------------------
# Span identity and reading back


def test_is_recording_and_span_context(setup):
    span = setup.tracer.start_span("op")
    ctx = span.get_span_context()
    assert span.is_recording()
    assert isinstance(ctx, SpanContext)
    assert ctx.trace_id != 0 and ctx.span_id != 0
    assert ctx.trace_id < 2**128 and ctx.span_id < 2**64
    assert span.get_span_context() == ctx
    span.end()
    assert not span.is_recording()
    assert span.get_span_context() == ctx
    finished = setup.spans()["op"]
    assert finished.get_span_context() == finished.context
    assert finished.context.trace_id == ctx.trace_id
    assert finished.context.span_id == ctx.span_id


def test_ids_are_unique(setup):
    contexts = []
    for _ in range(2000):
        span = setup.tracer.start_span("id")
        contexts.append(span.get_span_context())
        span.end()
    assert len({c.trace_id for c in contexts}) == 2000
    assert len({c.span_id for c in contexts}) == 2000


def test_get_current_span_outside_and_inside(setup):
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert not trace.get_current_span().get_span_context().is_valid
    with setup.tracer.start_as_current_span("outer") as outer:
        assert trace.get_current_span() is outer
        assert trace.get_current_span(trace.set_span_in_context(outer)) is outer
        with setup.tracer.start_as_current_span("inner") as inner:
            assert trace.get_current_span() is inner
        assert trace.get_current_span() is outer
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_use_span(setup):
    span = setup.tracer.start_span("used")
    with trace.use_span(span) as used:
        assert used is span
        assert trace.get_current_span() is span
        child = setup.tracer.start_span("child")
        child.end()
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert span.is_recording()  # end_on_exit defaults to False
    assert "used" not in setup.spans()
    with trace.use_span(span, end_on_exit=True):
        pass
    assert not span.is_recording()
    spans = setup.spans()
    assert spans["child"].parent.span_id == span.get_span_context().span_id
    assert "used" in spans


def test_use_span_records_exception(setup):
    span = setup.tracer.start_span("used")
    with pytest.raises(BoomError):
        with trace.use_span(span, end_on_exit=True):
            raise BoomError("inside use_span")
    finished = setup.spans()["used"]
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "BoomError: inside use_span"
    assert exception_events(finished)[0]["exception.message"] == "inside use_span"


def test_use_span_with_non_recording_span(setup):
    remote = NonRecordingSpan(remote_context())
    with trace.use_span(remote):
        assert trace.get_current_span() is remote
        with setup.tracer.start_as_current_span("child"):
            pass
    finished = setup.spans()["child"]
    assert finished.context.trace_id == remote.get_span_context().trace_id
    assert finished.parent.span_id == remote.get_span_context().span_id
    assert finished.parent.is_remote


def test_readable_span_to_json(setup):
    import json

    with setup.tracer.start_as_current_span("op", kind=SpanKind.CLIENT, attributes={"a": 1}):
        pass
    data = json.loads(setup.spans()["op"].to_json())
    assert data["name"] == "op"
    assert data["kind"] == "SpanKind.CLIENT"
    assert data["attributes"] == {"a": 1}
    assert data["context"]["trace_id"].startswith("0x")


# ------------------------------------------------------------------------------------------
# After end


def test_span_ended_twice_is_exported_once(setup):
    counters_before = setup.provider._counters()["spans_ended_twice"]
    span = setup.tracer.start_span("twice")
    span.end()
    first_end = setup.spans()["twice"].end_time
    span.end()
    span.end(end_time=1)
    with setup.tracer.start_as_current_span("exit_after_end") as exited:
        exited.end()
    finished = setup.exporter.get_finished_spans()
    assert [s.name for s in finished] == ["twice", "exit_after_end"]
    assert finished[0].end_time == first_end
    assert setup.provider._counters()["spans_ended_twice"] - counters_before == 3


def test_the_name_reads_after_end_as_last_renamed(setup):
    # As opentelemetry-sdk's span: the name stays readable once the span has been exported.
    span = setup.tracer.start_span("first")
    span.update_name("second")
    assert span.name == "second"
    span.end()
    assert setup.exporter.get_finished_spans()[0].name == "second"
    assert span.name == "second"
    with setup.tracer.start_as_current_span("scoped") as scoped:
        pass
    assert scoped.name == "scoped"


def test_ended_spans_read_as_the_official_sdks(setup, official):
    # What the span recorded stays readable on the span object after its end, as on
    # opentelemetry-sdk's span (tests and application code read it there).
    official_provider, _ = official()
    official_tracer = official_provider.get_tracer(__name__)

    def record(tracer):
        parent = tracer.start_span("parent")
        with trace.use_span(parent, end_on_exit=True):
            with tracer.start_as_current_span("scoped", kind=SpanKind.CLIENT,
                                              attributes={"a": 1, "b": [1, 2]},
                                              links=[Link(remote_context(), {"l": 1})]) as scoped:
                scoped.set_attribute("c", "three")
                scoped.add_event("first", {"k": "v"}, timestamp=1_700_000_000_000_000_000)
                scoped.set_status(Status(StatusCode.ERROR, "broken"))
        started = tracer.start_span("started", kind=SpanKind.PRODUCER, start_time=10)
        started.set_attributes({"x": 1.5})
        started.end(end_time=20)
        return parent, scoped, started

    def read(span):
        return {
            "name": span.name,
            "kind": span.kind,
            "attributes": dict(span.attributes),
            "events": [(e.name, e.timestamp, dict(e.attributes)) for e in span.events],
            "links": [(link.context.span_id, dict(link.attributes)) for link in span.links],
            "status": (span.status.status_code, span.status.description),
            "parent": span.parent.span_id if span.parent else None,
            "timed": (span.start_time is not None, span.end_time is not None),
        }

    mine, theirs = record(setup.tracer), record(official_tracer)
    for m, t in zip(mine, theirs, strict=True):
        want = read(t)
        got = read(m)
        if want["parent"] is not None:  # ids differ between the two stacks
            want["parent"], got["parent"] = True, got["parent"] == mine[0].context.span_id
        assert got == want
    assert (mine[2].start_time, mine[2].end_time) == (10, 20)
    assert mine[1].end_time >= mine[1].start_time
    # The read API answers from the span's own copy: what the exporter got is the same.
    exported = setup.spans()["scoped"]
    assert dict(exported.attributes) == dict(mine[1].attributes)
    assert exported.end_time == mine[1].end_time


def test_changes_after_end_are_ignored(setup):
    span = setup.tracer.start_span("op", attributes={"before": 1})
    span.add_event("before_end")
    span.end()
    snapshot = setup.spans()["op"]
    # None of these may raise or change what was exported.
    span.set_attribute("after", 1)
    span.set_attributes({"after2": 2})
    span.add_event("after_end")
    span.add_link(remote_context())
    span.set_status(StatusCode.ERROR, "too late")
    span.update_name("too late")
    span.record_exception(BoomError("too late"))
    assert not span.is_recording()
    assert span.name == "op"
    (finished,) = setup.exporter.get_finished_spans()
    assert finished.name == "op"
    assert dict(finished.attributes) == {"before": 1}
    assert [e.name for e in finished.events] == ["before_end"]
    assert finished.links == ()
    assert finished.status.status_code is StatusCode.UNSET
    assert finished.end_time == snapshot.end_time
