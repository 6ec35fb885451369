"""W3C trace context and baggage through opentelemetry.propagate, on djtrace spans."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.trace import SpanKind, TraceState

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def traceparent_of(span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_default_propagators_are_w3c():
    assert set(propagate.get_global_textmap().fields) >= {"traceparent", "tracestate", "baggage"}


def test_inject_current_span(setup):
    with setup.tracer.start_as_current_span("client", kind=SpanKind.CLIENT) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert carrier["traceparent"] == traceparent_of(span)
    assert carrier["traceparent"].endswith("-01")
    assert "tracestate" not in carrier


def test_inject_outside_a_span_injects_nothing(setup):
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    assert "traceparent" not in carrier


def test_inject_from_explicit_context(setup):
    span = setup.tracer.start_span("not_current")
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    span.end()
    assert carrier["traceparent"] == traceparent_of(span)


def test_continue_remote_parent(setup):
    ctx = propagate.extract({"traceparent": TRACEPARENT})
    remote = trace.get_current_span(ctx).get_span_context()
    assert remote.is_remote and remote.trace_id == TRACE_ID
    with setup.tracer.start_as_current_span("server", context=ctx, kind=SpanKind.SERVER) as span:
        ctx_inside = span.get_span_context()
        with setup.tracer.start_as_current_span("local_child"):
            pass
    assert ctx_inside.trace_id == TRACE_ID
    assert ctx_inside.span_id != SPAN_ID
    assert not ctx_inside.is_remote
    assert ctx_inside.trace_flags.sampled
    spans = setup.spans()
    server = spans["server"]
    assert server.context.trace_id == TRACE_ID
    assert server.parent.span_id == SPAN_ID
    assert server.parent.trace_id == TRACE_ID
    assert server.parent.is_remote
    assert spans["local_child"].parent.span_id == ctx_inside.span_id
    assert not spans["local_child"].parent.is_remote


def test_continue_remote_parent_from_attached_context(setup):
    token = context.attach(propagate.extract({"traceparent": TRACEPARENT}))
    try:
        with setup.tracer.start_as_current_span("server"):
            pass
        setup.tracer.start_span("started").end()
    finally:
        context.detach(token)
    for finished in setup.spans().values():
        assert finished.context.trace_id == TRACE_ID
        assert finished.parent.span_id == SPAN_ID
        assert finished.parent.is_remote


def test_round_trip_between_two_services(setup):
    """Service A injects, service B extracts and continues; then B calls C the same way."""
    with setup.tracer.start_as_current_span("a_client", kind=SpanKind.CLIENT) as a:
        headers_ab: dict[str, str] = {}
        propagate.inject(headers_ab)
    with setup.tracer.start_as_current_span(
        "b_server", context=propagate.extract(headers_ab), kind=SpanKind.SERVER
    ) as b:
        headers_bc: dict[str, str] = {}
        propagate.inject(headers_bc)
    with setup.tracer.start_as_current_span(
        "c_server", context=propagate.extract(headers_bc), kind=SpanKind.SERVER
    ):
        pass
    spans = setup.spans()
    trace_id = a.get_span_context().trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert spans["b_server"].parent.span_id == a.get_span_context().span_id
    assert spans["c_server"].parent.span_id == b.get_span_context().span_id
    assert spans["b_server"].parent.is_remote and spans["c_server"].parent.is_remote


def test_tracestate_is_continued_and_injected(setup):
    ctx = propagate.extract({"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=x1"})
    with setup.tracer.start_as_current_span("server", context=ctx) as span:
        expected = TraceState([("vendor", "abc"), ("other", "x1")])
        assert span.get_span_context().trace_state == expected
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert carrier["tracestate"] == "vendor=abc,other=x1"
    finished = setup.spans()["server"]
    assert finished.context.trace_state.get("vendor") == "abc"
    assert finished.context.trace_state.to_header() == "vendor=abc,other=x1"


def test_baggage_round_trip(setup):
    ctx = baggage.set_baggage("user.id", "alice")
    ctx = baggage.set_baggage("tenant", "acme corp", context=ctx)
    token = context.attach(ctx)
    try:
        with setup.tracer.start_as_current_span("client") as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            # Baggage and the current span live side by side in the context.
            assert baggage.get_baggage("user.id") == "alice"
    finally:
        context.detach(token)
    assert carrier["traceparent"] == traceparent_of(span)
    assert "user.id=alice" in carrier["baggage"]
    extracted = propagate.extract(carrier)
    assert baggage.get_all(extracted) == {"user.id": "alice", "tenant": "acme corp"}
    # As with the official SDK, `context=` picks the parent only; attaching the extracted
    # context makes its baggage current as well.
    token = context.attach(extracted)
    try:
        with setup.tracer.start_as_current_span("server") as server:
            assert baggage.get_baggage("tenant") == "acme corp"
            assert trace.get_current_span() is server
    finally:
        context.detach(token)
    assert setup.spans()["server"].parent.span_id == span.get_span_context().span_id


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short span id
    ],
)
def test_invalid_traceparent_starts_a_new_trace(setup, header):
    ctx = propagate.extract({"traceparent": header})
    with setup.tracer.start_as_current_span("server", context=ctx) as span:
        pass
    finished = setup.spans()["server"]
    assert finished.parent is None
    assert finished.context.trace_id == span.get_span_context().trace_id != TRACE_ID


def test_remote_parent_keeps_unsampled_flag_on_inject(setup):
    """A sampler written in Python or not, an unsampled remote parent's flags propagate."""
    ctx = propagate.extract({"traceparent": TRACEPARENT[:-2] + "00"})
    with setup.tracer.start_as_current_span("server", context=ctx) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    trace_id, span_id, flags = carrier["traceparent"].split("-")[1:]
    assert int(trace_id, 16) == TRACE_ID
    assert int(span_id, 16) == span.get_span_context().span_id
    sampled = span.get_span_context().trace_flags.sampled
    assert flags == ("01" if sampled else "00")
    if setup.name != "python_sampler":  # default ParentBased: follows the parent
        assert not sampled and not span.is_recording()
