"""Span limits, from SpanLimits arguments and from OTEL_* variables, compared with
opentelemetry-sdk where both accept the same input."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import SpanLimits as OfficialSpanLimits
from opentelemetry.trace import Link, SpanContext, TraceFlags

from djtrace.sdk import SpanLimits

from ._helpers import run_python

LIMIT_VARIABLES = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)


@pytest.fixture(autouse=True)
def _clean_limit_env(monkeypatch):
    for name in LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def link_context(n: int) -> SpanContext:
    return SpanContext(0xABC0 + n, 0xDEF0 + n, is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


def exercise(tracer):
    """Records more than the limits used below allow, through every API that records."""
    links = [Link(link_context(i), {f"la{j}": j for j in range(4)}) for i in range(4)]
    with tracer.start_as_current_span(
        "limited", attributes={"start0": "s" * 10, "start1": 1}, links=links
    ) as span:
        for i in range(5):
            span.set_attribute(f"attr{i}", "x" * (i + 3))
        span.set_attribute("start1", 2)  # overwriting does not count as a new attribute
        span.set_attribute("list", ["abcdefgh", "ij", "klmnopqrstu"])
        span.set_attribute("number", 123456789)
        span.set_attributes({"unicode": "héllo wörld ☃☃☃", "flag": True})
        for i in range(6):
            span.add_event(f"event{i}", {f"ea{j}": "v" * 8 for j in range(4)})
        span.add_link(link_context(10), {"added": "a" * 9, "second": 2})


def summary(span) -> dict:
    return {
        "attributes": dict(span.attributes),
        "dropped_attributes": span.dropped_attributes,
        "events": [(e.name, dict(e.attributes)) for e in span.events],
        "dropped_events": span.dropped_events,
        "links": [(link.context.span_id, dict(link.attributes)) for link in span.links],
        "dropped_links": span.dropped_links,
    }


LIMIT_CASES = {
    "defaults": {},
    "span_attributes": dict(max_span_attributes=4),
    "span_attributes_zero": dict(max_span_attributes=0),
    "general_attributes": dict(max_attributes=3),
    "specific_beats_general": dict(max_attributes=2, max_span_attributes=5, max_event_attributes=3),
    "events": dict(max_events=2),
    "events_zero": dict(max_events=0),
    "links": dict(max_links=2),
    "links_zero": dict(max_links=0),
    "event_attributes": dict(max_event_attributes=1),
    "link_attributes": dict(max_link_attributes=1),
    "length": dict(max_attribute_length=4),
    "length_zero": dict(max_attribute_length=0),
    "span_length": dict(max_span_attribute_length=4),
    "span_and_general_length": dict(max_span_attribute_length=4, max_attribute_length=6),
    "everything": dict(max_span_attributes=3, max_events=3, max_links=3, max_event_attributes=2,
                       max_link_attributes=2, max_attribute_length=5),
}


@pytest.mark.parametrize("limits", list(LIMIT_CASES.values()), ids=list(LIMIT_CASES))
def test_limits_match_official_sdk(make_provider, official, limits):
    provider, memory = make_provider(span_limits=SpanLimits(**limits))
    official_provider, official_memory = official(span_limits=OfficialSpanLimits(**limits))
    exercise(provider.get_tracer(__name__))
    exercise(official_provider.get_tracer(__name__))
    (mine,) = memory.get_finished_spans()
    (theirs,) = official_memory.get_finished_spans()
    assert summary(mine) == summary(theirs)


LIMIT_FIELDS = ("max_attributes", "max_span_attributes", "max_event_attributes",
                "max_link_attributes", "max_events", "max_links", "max_attribute_length",
                "max_span_attribute_length")

ARGUMENT_CASES = {
    "none": {},
    "general": dict(max_attributes=5),
    "general_unset": dict(max_attributes=SpanLimits.UNSET),
    "general_unset_specific_set": dict(max_attributes=SpanLimits.UNSET, max_link_attributes=3),
    "all_unset": {f: SpanLimits.UNSET for f in LIMIT_FIELDS},
    "zeros": {f: 0 for f in LIMIT_FIELDS},
    "length": dict(max_attribute_length=10),
    "span_length": dict(max_span_attribute_length=10),
    "both_lengths": dict(max_attribute_length=10, max_span_attribute_length=20),
}


@pytest.mark.parametrize("kwargs", list(ARGUMENT_CASES.values()), ids=list(ARGUMENT_CASES))
def test_limit_values_match_official_sdk(kwargs):
    mine, theirs = SpanLimits(**kwargs), OfficialSpanLimits(**kwargs)
    assert ({f: getattr(mine, f) for f in LIMIT_FIELDS}
            == {f: getattr(theirs, f) for f in LIMIT_FIELDS})


def test_attribute_count_limit_keeps_the_newest(make_provider):
    provider, memory = make_provider(span_limits=SpanLimits(max_span_attributes=2))
    with provider.get_tracer(__name__).start_as_current_span("op", attributes={"a": 1}) as span:
        span.set_attribute("b", 2)
        span.set_attribute("c", 3)
        span.set_attribute("b", 20)  # an existing key is replaced, nothing is dropped
    (finished,) = memory.get_finished_spans()
    assert dict(finished.attributes) == {"c": 3, "b": 20}
    assert finished.dropped_attributes == 1


def test_length_limit_counts_characters_not_bytes(make_provider):
    provider, memory = make_provider(span_limits=SpanLimits(max_attribute_length=3))
    with provider.get_tracer(__name__).start_as_current_span("op") as span:
        span.set_attribute("accents", "éèêë")
        span.set_attribute("emoji", "\U0001F600\U0001F601\U0001F602\U0001F603")
        span.set_attribute("short", "ab")
        span.set_attribute("list", ("ünïcode", "ok"))
        span.set_attribute("not_a_string", 123456)
    (finished,) = memory.get_finished_spans()
    assert dict(finished.attributes) == {
        "accents": "éèê",
        "emoji": "\U0001F600\U0001F601\U0001F602",
        "short": "ab",
        "list": ("ünï", "ok"),
        "not_a_string": 123456,
    }


def test_unset_means_unlimited(make_provider):
    provider, memory = make_provider(span_limits=SpanLimits(
        max_span_attributes=SpanLimits.UNSET, max_events=SpanLimits.UNSET,
        max_links=SpanLimits.UNSET, max_event_attributes=SpanLimits.UNSET,
        max_link_attributes=SpanLimits.UNSET, max_attribute_length=SpanLimits.UNSET))
    tracer = provider.get_tracer(__name__)
    many = {f"k{i}": i for i in range(300)}
    links = [Link(link_context(i), many) for i in range(200)]
    with tracer.start_as_current_span("op", attributes=many, links=links) as span:
        for i in range(300):
            span.add_event(f"e{i}", many)
        span.set_attribute("long", "x" * 100_000)
    (finished,) = memory.get_finished_spans()
    assert len(finished.attributes) == 301
    assert len(finished.attributes["long"]) == 100_000
    assert len(finished.events) == 300
    assert len(finished.events[0].attributes) == 300
    assert len(finished.links) == 200
    assert len(finished.links[0].attributes) == 300
    assert finished.dropped_attributes == finished.dropped_events == finished.dropped_links == 0


def test_default_limits_are_128(make_provider):
    provider, memory = make_provider()
    with provider.get_tracer(__name__).start_as_current_span("op") as span:
        for i in range(130):
            span.set_attribute(f"k{i}", i)
            span.add_event(f"e{i}")
    (finished,) = memory.get_finished_spans()
    assert len(finished.attributes) == 128 and finished.dropped_attributes == 2
    assert len(finished.events) == 128 and finished.dropped_events == 2
    assert finished.events[0].name == "e2"  # the oldest are dropped


# ------------------------------------------------------------------------------------------
# From the environment


def test_limits_from_env(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "4")
    monkeypatch.setenv("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "5")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "6")
    mine, theirs = SpanLimits(), OfficialSpanLimits()
    for field in ("max_span_attributes", "max_events", "max_links", "max_event_attributes",
                  "max_link_attributes", "max_attribute_length", "max_span_attribute_length",
                  "max_attributes"):
        assert getattr(mine, field) == getattr(theirs, field), field
    assert (mine.max_span_attributes, mine.max_events, mine.max_links, mine.max_event_attributes,
            mine.max_link_attributes, mine.max_attribute_length) == (3, 2, 1, 4, 5, 6)


def test_general_attribute_limit_from_env(monkeypatch):
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "7")
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "2")
    mine, theirs = SpanLimits(), OfficialSpanLimits()
    assert (mine.max_attributes, mine.max_span_attributes, mine.max_event_attributes,
            mine.max_link_attributes) == (7, 7, 2, 7)
    assert (theirs.max_attributes, theirs.max_span_attributes, theirs.max_event_attributes,
            theirs.max_link_attributes) == (7, 7, 2, 7)


def test_arguments_beat_env(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")
    limits = SpanLimits(max_span_attributes=10)
    assert (limits.max_span_attributes, limits.max_events) == (10, 2)


def test_env_limits_apply_to_spans(monkeypatch, make_provider):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    provider, memory = make_provider()  # TracerProvider() reads the variables
    with provider.get_tracer(__name__).start_as_current_span("op") as span:
        span.set_attributes({"a": "aaaa", "b": "bbbb", "c": "cccc"})
        span.add_event("first")
        span.add_event("second")
    (finished,) = memory.get_finished_spans()
    assert dict(finished.attributes) == {"b": "bbb", "c": "ccc"}
    assert [e.name for e in finished.events] == ["second"]


@pytest.mark.parametrize("name", ["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT",
                                  "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"])
@pytest.mark.parametrize("value", ["many", "-1", "2.5"])
def test_bad_env_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        SpanLimits()


def test_empty_env_value_means_default(monkeypatch):
    """The OpenTelemetry specification: an empty variable is treated as unset."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "  ")
    limits = SpanLimits()
    assert (limits.max_span_attributes, limits.max_events) == (128, 128)


@pytest.mark.parametrize("value", [-2, "5", 1.5, True])
def test_bad_argument_is_rejected(value):
    with pytest.raises(ValueError):
        SpanLimits(max_span_attributes=value)


def test_env_limits_on_a_fresh_global_provider():
    out = run_python(
        """
        import json
        from opentelemetry import trace
        from djtrace.sdk import TracerProvider, SimpleSpanProcessor, InMemorySpanExporter
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        with trace.get_tracer(__name__).start_as_current_span("op") as span:
            for i in range(5):
                span.set_attribute(f"k{i}", "value")
                span.add_event(f"e{i}", {"a": 1, "b": 2})
        (s,) = memory.get_finished_spans()
        print(json.dumps({"attributes": dict(s.attributes), "dropped": s.dropped_attributes,
                          "events": [[e.name, dict(e.attributes)] for e in s.events]}))
        """,
        env={"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "2", "OTEL_SPAN_EVENT_COUNT_LIMIT": "2",
             "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3"},
    )
    assert out == {
        "attributes": {"k3": "val", "k4": "val"},
        "dropped": 3,
        "events": [["e3", {"b": 2}], ["e4", {"b": 2}]],
    }
