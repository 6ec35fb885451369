"""Samplers: built-in ones decide natively, and agree with opentelemetry-sdk's decisions;
samplers written in Python are honoured."""

from __future__ import annotations

import random

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import sampling as official_sampling
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

from djtrace.sdk import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from djtrace.sdk.trace import sampling as djtrace_sampling

from ._helpers import RecordingProcessor, run_python

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
RATIOS = (0.0, 0.001, 0.1, 0.25, 0.5, 0.999, 1.0)
LOW64 = (1 << 64) - 1


def traceparent(sampled: bool) -> str:
    return f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-{'01' if sampled else '00'}"


# ------------------------------------------------------------------------------------------
# Agreement with opentelemetry-sdk


def interesting_trace_ids(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    ids = [rng.getrandbits(128) for _ in range(count)]
    # Around every bound, in the low 64 bits the samplers read, with random high bits.
    for ratio in RATIOS:
        bound = official_sampling.TraceIdRatioBased.get_bound_for_rate(ratio)
        for low in (bound - 1, bound, bound + 1):
            if 0 <= low <= LOW64:
                ids.append((rng.getrandbits(64) << 64) | low)
    ids += [1, LOW64, 1 << 64, (1 << 128) - 1, (LOW64 << 64) | 1]
    return ids


@pytest.mark.parametrize("ratio", RATIOS)
def test_trace_id_ratio_agrees_with_official_sdk(ratio):
    native = TraceIdRatioBased(ratio)._native
    official = official_sampling.TraceIdRatioBased(ratio)
    assert TraceIdRatioBased(ratio).bound == official.bound
    ids = interesting_trace_ids(100_000, seed=int(ratio * 1000))
    mismatches = []
    sampled = 0
    for tid in ids:
        mine = Decision(native.should_sample(tid, False, False, False)).name
        theirs = official.should_sample(None, tid, "x").decision.name
        sampled += mine == "RECORD_AND_SAMPLE"
        if mine != theirs:
            mismatches.append((hex(tid), mine, theirs))
    assert mismatches == []
    # The rate is the one asked for (guards against a test that compares nothing).
    assert abs(sampled / len(ids) - ratio) < 0.01
    if ratio == 0.0:
        assert sampled == 0
    if ratio == 1.0:
        assert sampled == len(ids)


def official_parent_context(valid: bool, remote: bool, sampled: bool):
    if not valid:
        return None
    ctx = SpanContext(TRACE_ID, SPAN_ID, is_remote=remote,
                      trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


PARENTS = [(False, False, False)] + [
    (True, remote, sampled) for remote in (False, True) for sampled in (False, True)
]


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("parent", PARENTS,
                         ids=lambda p: f"valid={p[0]:d},remote={p[1]:d},sampled={p[2]:d}")
def test_parent_based_agrees_with_official_sdk(ratio, parent):
    valid, remote, sampled = parent
    native = ParentBased(TraceIdRatioBased(ratio))._native
    official = official_sampling.ParentBased(official_sampling.TraceIdRatioBased(ratio))
    parent_context = official_parent_context(valid, remote, sampled)
    count = 100_000 if not valid else 10_000
    mismatches = []
    for tid in interesting_trace_ids(count, seed=7):
        mine = Decision(native.should_sample(tid, valid, remote, sampled)).name
        theirs = official.should_sample(parent_context, tid, "x").decision.name
        if mine != theirs:
            mismatches.append((hex(tid), mine, theirs))
    assert mismatches == []


def test_parent_based_with_every_delegate_agrees_with_official_sdk():
    delegates = dict(
        remote_parent_sampled=("ALWAYS_OFF", ALWAYS_OFF, official_sampling.ALWAYS_OFF),
        remote_parent_not_sampled=("ALWAYS_ON", ALWAYS_ON, official_sampling.ALWAYS_ON),
        local_parent_sampled=("ratio", TraceIdRatioBased(0.5),
                              official_sampling.TraceIdRatioBased(0.5)),
        local_parent_not_sampled=("ALWAYS_ON", ALWAYS_ON, official_sampling.ALWAYS_ON),
    )
    mine = ParentBased(ALWAYS_OFF, **{k: v[1] for k, v in delegates.items()})
    theirs = official_sampling.ParentBased(official_sampling.ALWAYS_OFF,
                                           **{k: v[2] for k, v in delegates.items()})
    assert mine._native is not None  # decided natively
    for valid, remote, sampled in PARENTS:
        parent_context = official_parent_context(valid, remote, sampled)
        for tid in interesting_trace_ids(2_000, seed=3):
            expected = theirs.should_sample(parent_context, tid, "x").decision.name
            decision = mine._native.should_sample(tid, valid, remote, sampled)
            assert Decision(decision).name == expected
            # The Python-level should_sample of a native sampler gives the same answer.
            assert mine.should_sample(parent_context, tid, "x").decision.name == expected


@pytest.mark.parametrize(
    "mine, theirs",
    [
        (ALWAYS_ON, official_sampling.ALWAYS_ON),
        (ALWAYS_OFF, official_sampling.ALWAYS_OFF),
        (TraceIdRatioBased(0.25), official_sampling.TraceIdRatioBased(0.25)),
        (TraceIdRatioBased(1e-05), official_sampling.TraceIdRatioBased(1e-05)),
        (ParentBased(TraceIdRatioBased(0.5)),
         official_sampling.ParentBased(official_sampling.TraceIdRatioBased(0.5))),
        (ParentBasedTraceIdRatio(0.1), official_sampling.ParentBasedTraceIdRatio(0.1)),
        (djtrace_sampling.DEFAULT_ON, official_sampling.DEFAULT_ON),
        (djtrace_sampling.DEFAULT_OFF, official_sampling.DEFAULT_OFF),
    ],
    ids=lambda s: type(s).__name__,
)
def test_descriptions_match_official_sdk(mine, theirs):
    assert mine.get_description() == theirs.get_description()


def test_ratio_out_of_range_is_rejected():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            TraceIdRatioBased(bad)


# ------------------------------------------------------------------------------------------
# Samplers on a provider


def test_always_off_gives_non_recording_spans_that_still_propagate(make_provider):
    processor = RecordingProcessor()
    provider, memory = make_provider(sampler=ALWAYS_OFF, processors=[processor])
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("root", attributes={"a": 1}) as root:
        assert trace.get_current_span() is root
        assert not root.is_recording()
        ctx = root.get_span_context()
        assert ctx.is_valid
        assert not ctx.trace_flags.sampled
        # Every API call is accepted and ignored.
        root.set_attribute("k", "v")
        root.set_attributes({"k2": 2})
        root.add_event("e", {"x": 1})
        root.add_link(ctx)
        root.set_status(trace.StatusCode.ERROR, "x")
        root.update_name("renamed")
        root.record_exception(ValueError("x"))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with tracer.start_as_current_span("child") as child:
            child_ctx = child.get_span_context()
    assert carrier["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-00"
    assert child_ctx.trace_id == ctx.trace_id
    assert child_ctx.span_id != ctx.span_id
    assert not child.is_recording()
    with pytest.raises(ValueError):
        with tracer.start_as_current_span("raising"):
            raise ValueError("not recorded, still raised")
    assert memory.get_finished_spans() == ()
    # As with opentelemetry-sdk: span processors only see recording spans.
    assert processor.events == []
    assert provider._counters()["spans_sampled_out"] == 3


def test_always_off_from_python_level_api(make_provider):
    provider, memory = make_provider(sampler=ALWAYS_OFF)
    span = provider.get_tracer(__name__).start_span("s")
    assert not span.is_recording() and span.get_span_context().is_valid
    span.end()
    span.end()
    assert memory.get_finished_spans() == ()


def test_parent_based_follows_remote_unsampled_parent(make_provider):
    provider, memory = make_provider(sampler=ParentBased(ALWAYS_ON))
    tracer = provider.get_tracer(__name__)
    ctx = propagate.extract({"traceparent": traceparent(sampled=False), "tracestate": "k=v"})
    with tracer.start_as_current_span("server", context=ctx, kind=SpanKind.SERVER) as span:
        assert not span.is_recording()
        span_ctx = span.get_span_context()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with tracer.start_as_current_span("local_child") as child:
            assert not child.is_recording()
    assert span_ctx.trace_id == TRACE_ID
    assert span_ctx.span_id not in (0, SPAN_ID)
    assert not span_ctx.trace_flags.sampled
    assert span_ctx.trace_state == TraceState([("k", "v")])
    assert carrier["traceparent"] == f"00-{TRACE_ID:032x}-{span_ctx.span_id:016x}-00"
    assert carrier["tracestate"] == "k=v"
    assert child.get_span_context().trace_id == TRACE_ID
    assert memory.get_finished_spans() == ()


def test_parent_based_follows_remote_sampled_parent(make_provider):
    provider, memory = make_provider(sampler=ParentBased(ALWAYS_OFF))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("root"):  # no parent: ALWAYS_OFF
        pass
    ctx = propagate.extract({"traceparent": traceparent(sampled=True)})
    with tracer.start_as_current_span("server", context=ctx) as span:
        assert span.is_recording()
        with tracer.start_as_current_span("child"):
            pass
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {"server", "child"}
    assert spans["server"].parent.span_id == SPAN_ID and spans["server"].parent.is_remote
    assert spans["child"].parent.span_id == span.get_span_context().span_id


def test_parent_based_local_delegates(make_provider):
    provider, memory = make_provider(
        sampler=ParentBased(ALWAYS_OFF, local_parent_not_sampled=ALWAYS_ON))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("dropped_root") as root:
        with tracer.start_as_current_span("recorded_child") as child:
            assert child.is_recording()
    (finished,) = memory.get_finished_spans()
    assert finished.name == "recorded_child"
    assert finished.parent.span_id == root.get_span_context().span_id
    assert finished.context.trace_id == root.get_span_context().trace_id
    assert not finished.parent.is_remote


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_trace_id_ratio_on_provider(make_provider, ratio):
    provider, memory = make_provider(sampler=TraceIdRatioBased(ratio))
    tracer = provider.get_tracer(__name__)
    bound = official_sampling.TraceIdRatioBased.get_bound_for_rate(ratio)
    spans = []
    for _ in range(1000):
        span = tracer.start_span("s")
        span.end()
        spans.append(span)
    for span in spans:
        ctx = span.get_span_context()
        expected = (ctx.trace_id & LOW64) < bound
        assert ctx.trace_flags.sampled == expected == span.get_span_context().trace_flags.sampled
    exported = {s.context.span_id for s in memory.get_finished_spans()}
    assert exported == {s.get_span_context().span_id for s in spans
                        if s.get_span_context().trace_flags.sampled}


# ------------------------------------------------------------------------------------------
# Samplers written in Python


class NameSampler(Sampler):
    """Decides by span name and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None):
        self.calls.append(dict(parent=trace.get_current_span(parent_context).get_span_context(),
                               trace_id=trace_id, name=name, kind=kind,
                               attributes=dict(attributes or {}), links=list(links or ()),
                               trace_state=trace_state))
        if name.startswith("drop"):
            return SamplingResult(Decision.DROP, {"ignored": True})
        if name.startswith("record_only"):
            return SamplingResult(Decision.RECORD_ONLY, {"sampler.decision": "record_only"})
        state = TraceState([("sampler", "yes")]) if name.startswith("stateful") else trace_state
        return SamplingResult(Decision.RECORD_AND_SAMPLE,
                              {"sampler.decision": "sample", "shared": "from_sampler"}, state)

    def get_description(self) -> str:
        return "NameSampler"


def test_python_sampler_is_asked_with_official_arguments(make_provider):
    sampler = NameSampler()
    provider, memory = make_provider(sampler=sampler)
    assert provider.sampler is sampler
    tracer = provider.get_tracer(__name__)
    link_ctx = SpanContext(TRACE_ID, SPAN_ID, is_remote=True)
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER,
                                      attributes={"shared": "from_caller", "mine": 1},
                                      links=[Link(link_ctx, {"l": 1})]) as root:
        with tracer.start_as_current_span("child"):
            pass
    root_call, child_call = sampler.calls
    root_ctx = root.get_span_context()
    assert root_call["name"] == "root"
    assert root_call["kind"] is SpanKind.SERVER
    assert root_call["attributes"] == {"shared": "from_caller", "mine": 1}
    assert [link.context for link in root_call["links"]] == [link_ctx]
    assert not root_call["parent"].is_valid
    assert root_call["trace_id"] == root_ctx.trace_id  # the id the root span then uses
    assert child_call["parent"] == root_ctx
    assert child_call["trace_id"] == root_ctx.trace_id
    spans = {s.name: s for s in memory.get_finished_spans()}
    # Attributes the sampler adds are recorded, and win over the caller's.
    assert dict(spans["root"].attributes) == {
        "shared": "from_sampler", "mine": 1, "sampler.decision": "sample"}
    assert dict(spans["child"].attributes) == {
        "sampler.decision": "sample", "shared": "from_sampler"}


def test_python_sampler_decisions(make_provider):
    sampler = NameSampler()
    processor = RecordingProcessor()
    provider, memory = make_provider(sampler=sampler, processors=[processor])
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("drop_me") as dropped:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    with tracer.start_as_current_span("record_only") as record_only:
        assert record_only.is_recording()
        assert not record_only.get_span_context().trace_flags.sampled
        record_only.set_attribute("set", "later")
    with tracer.start_as_current_span("stateful") as stateful:
        with tracer.start_as_current_span("stateful_child"):
            pass
    dropped_ctx = dropped.get_span_context()
    assert not dropped.is_recording()
    assert dropped_ctx.is_valid and not dropped_ctx.trace_flags.sampled
    assert carrier["traceparent"].endswith(f"{dropped_ctx.span_id:016x}-00")
    assert stateful.get_span_context().trace_state == TraceState([("sampler", "yes")])
    exported = {s.name: s for s in memory.get_finished_spans()}
    # Exporters only get sampled spans (opentelemetry-sdk's Simple/BatchSpanProcessor rule).
    assert set(exported) == {"stateful", "stateful_child"}
    assert exported["stateful"].context.trace_state.get("sampler") == "yes"
    # Span processors see every recording span, sampled or not.
    assert [e for e in processor.events] == [
        ("start", "record_only"), ("end", "record_only"),
        ("start", "stateful"), ("start", "stateful_child"),
        ("end", "stateful_child"), ("end", "stateful"),
    ]
    record_only_read = processor.ended[0]
    assert dict(record_only_read.attributes) == {
        "sampler.decision": "record_only", "set": "later"}
    assert not record_only_read.context.trace_flags.sampled


def test_python_sampler_on_remote_parent(make_provider):
    sampler = NameSampler()
    provider, memory = make_provider(sampler=sampler)
    ctx = propagate.extract({"traceparent": traceparent(sampled=False), "tracestate": "a=b"})
    with provider.get_tracer(__name__).start_as_current_span("server", context=ctx) as span:
        pass
    (call,) = sampler.calls
    assert call["parent"].is_remote and call["parent"].span_id == SPAN_ID
    assert call["trace_id"] == TRACE_ID
    assert call["trace_state"] == TraceState([("a", "b")])
    assert span.get_span_context().trace_id == TRACE_ID
    (finished,) = memory.get_finished_spans()  # this sampler samples regardless of the parent
    assert finished.parent.span_id == SPAN_ID and finished.parent.is_remote


def test_parent_based_with_python_root(make_provider):
    sampler = NameSampler()
    provider, memory = make_provider(sampler=ParentBased(sampler))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("drop_root"):
        with tracer.start_as_current_span("child_of_dropped"):
            pass
    with tracer.start_as_current_span("kept_root"):
        with tracer.start_as_current_span("drop_but_parent_sampled"):
            pass
    # The Python root sampler is asked for roots only; children follow their parent.
    assert [c["name"] for c in sampler.calls] == ["drop_root", "kept_root"]
    assert {s.name for s in memory.get_finished_spans()} == {"kept_root", "drop_but_parent_sampled"}


def test_python_sampler_exception_does_not_break_the_application(make_provider):
    class Broken(Sampler):
        def should_sample(self, *args, **kwargs):
            raise RuntimeError("sampler bug")

    provider, memory = make_provider(sampler=Broken())
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("op") as span:
        span.set_attribute("a", 1)
    assert tracer.start_span("x") is not None
    assert memory.get_finished_spans() == ()


# ------------------------------------------------------------------------------------------
# OTEL_TRACES_SAMPLER


@pytest.mark.parametrize(
    "name, arg, description",
    [
        ("always_on", "", "AlwaysOnSampler"),
        ("always_off", "", "AlwaysOffSampler"),
        ("traceidratio", "0.25", "TraceIdRatioBased{0.25}"),
        ("traceidratio", "", "TraceIdRatioBased{1.0}"),
        ("parentbased_always_off", "",
         official_sampling.ParentBased(official_sampling.ALWAYS_OFF).get_description()),
        ("parentbased_traceidratio", "0.5",
         official_sampling.ParentBasedTraceIdRatio(0.5).get_description()),
        ("PARENTBASED_ALWAYS_ON", "",
         official_sampling.ParentBased(official_sampling.ALWAYS_ON).get_description()),
    ],
)
def test_sampler_from_env(make_provider, monkeypatch, name, arg, description):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    provider, _ = make_provider()
    assert provider.sampler.get_description() == description


@pytest.mark.parametrize(
    "name, arg, named",
    [("sometimes", "", "OTEL_TRACES_SAMPLER"), ("traceidratio", "1.5", "OTEL_TRACES_SAMPLER_ARG"),
     ("parentbased_traceidratio", "half", "OTEL_TRACES_SAMPLER_ARG")],
)
def test_bad_sampler_env_names_the_variable(monkeypatch, name, arg, named):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    with pytest.raises(djtrace_sampling.SamplerConfigError, match=named):
        djtrace_sampling.sampler_from_env()


def test_sampler_env_on_a_fresh_global_provider():
    out = run_python(
        """
        import json
        from opentelemetry import trace, propagate
        from djtrace.sdk import TracerProvider, SimpleSpanProcessor, InMemorySpanExporter
        provider = TracerProvider()
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span("root") as root:
            carrier = {}
            propagate.inject(carrier)
        ctx = propagate.extract(
            {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        with tracer.start_as_current_span("continued", context=ctx) as continued:
            pass
        print(json.dumps({
            "description": provider.sampler.get_description(),
            "root_recording": root.get_span_context().trace_flags.sampled,
            "traceparent": carrier["traceparent"],
            "continued": continued.get_span_context().trace_flags.sampled,
            "exported": [s.name for s in memory.get_finished_spans()],
        }))
        """,
        env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
    )
    assert out["description"].startswith("ParentBased{root:TraceIdRatioBased{0.0}")
    assert out["root_recording"] is False
    assert out["traceparent"].endswith("-00")
    assert out["continued"] is True
    assert out["exported"] == ["continued"]
