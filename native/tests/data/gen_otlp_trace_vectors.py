"""Writes otlp_trace_vectors.txt: reference encodings of ExportTraceServiceRequest made by the
official OpenTelemetry Python SDK, for native/tests/export/otlp_proto_test.cc and
otlp_json_test.cc, which build the same spans as SpanData and compare.

For each case:
  proto: the bytes of opentelemetry-exporter-otlp-proto-common's encode_spans(), serialized as
         the SDK's OTLP exporters do (hex).
  json:  the same message through protobuf's json_format (use_integers_for_enums, as OTLP/JSON
         wants), with the ids turned from base64 into hex as OTLP/JSON says, written compactly
         and with doubles in the shortest form std::to_chars gives (same digits as Python's
         repr, different choice between fixed and exponent notation).

Only the public API of opentelemetry-sdk, opentelemetry-api, opentelemetry-exporter-otlp-proto-
common and protobuf is used. Run from the repository's venv:
    .venv/bin/python native/tests/data/gen_otlp_trace_vectors.py
Keep the spans here and in the C++ tests in step.
"""

import base64
import json
import math
import os

from google.protobuf import json_format
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

TRACE_A = 0x4BF92F3577B34DA6A3CE929D0E0E4736
TRACE_B = 0x0AF7651916CD43DD8448EB211C80319C
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
T0 = 1_700_000_000_000_000_000  # start times, ns
SCHEMA_126 = "https://opentelemetry.io/schemas/1.26.0"
SCHEMA_121 = "https://opentelemetry.io/schemas/1.21.0"


def ctx(trace_id, span_id, remote=False, trace_state=None):
    return SpanContext(
        trace_id, span_id, is_remote=remote, trace_flags=SAMPLED, trace_state=trace_state
    )


def resource_main():
    return Resource(
        {
            "service.name": "orders",
            "service.version": "1.2.3",
            "deployment.environment.name": "prod",
        },
        SCHEMA_126,
    )


def scope_main():
    return InstrumentationScope("djtrace.django", "0.1.0", SCHEMA_126, {"scope.attr": "x"})


def span(name, span_id, resource, scope, trace_id=TRACE_A, **kw):
    kw.setdefault("kind", SpanKind.INTERNAL)
    kw.setdefault("start_time", T0)
    kw.setdefault("end_time", T0 + 1_500_000)
    return ReadableSpan(
        name,
        context=ctx(trace_id, span_id, trace_state=kw.pop("trace_state", None)),
        resource=resource,
        instrumentation_scope=scope,
        **kw,
    )


def case_empty():
    return []


def case_minimal():
    return [span("GET /", 0x00F067AA0BA902B7, resource_main(), scope_main(), kind=SpanKind.SERVER)]


def case_attribute_types():
    attributes = {
        "bool.true": True,
        "bool.false": False,
        "int.zero": 0,
        "int.negative": -42,
        "int.max": 2**63 - 1,
        "int.min": -(2**63),
        "double": 1.5,
        "double.zero": 0.0,
        "double.negative_zero": -0.0,
        "double.nan": math.nan,
        "double.inf": math.inf,
        "double.negative_inf": -math.inf,
        "double.subnormal": 5e-324,
        "double.big": 1e300,
        "double.integral": 3.0,
        "double.fraction": 0.1,
        "string.empty": "",
        "string": "hello",
        "array.bool": (True, False),
        "array.int": (1, -1, 300),
        "array.double": (0.5, -2.25),
        "array.string": ("a", "", "ü"),
        "array.empty": (),
        "array.empty.string": (),
        "": "empty key",
    }
    return [
        span("attributes", 0x1111111111111111, resource_main(), scope_main(), attributes=attributes)
    ]


def case_events():
    bounded = BoundedAttributes(maxlen=1, attributes={"a": 1, "b": 2}, immutable=True)
    events = [
        Event(
            "exception",
            {"exception.type": "ValueError", "exception.message": "boom"},
            timestamp=T0 + 10,
        ),
        Event("no attributes", None, timestamp=T0 + 20),
        Event("dropped", bounded, timestamp=T0 + 30),
    ]
    return [span("with events", 0x2222222222222222, resource_main(), scope_main(), events=events)]


def case_links():
    bounded = BoundedAttributes(maxlen=1, attributes={"a": 1, "b": 2}, immutable=True)
    links = [
        Link(
            ctx(
                TRACE_B,
                0x3333333333333333,
                remote=True,
                trace_state=TraceState([("vendor", "value")]),
            ),
            {"link.kind": "follows", "n": 7},
        ),
        Link(ctx(TRACE_A, 0x4444444444444444)),
        Link(ctx(TRACE_B, 0x5555555555555555, remote=True), bounded),
    ]
    return [span("with links", 0x6666666666666666, resource_main(), scope_main(), links=links)]


def case_status():
    r, s = resource_main(), scope_main()
    return [
        span(
            "error", 0x0000000000000001, r, s, status=Status(StatusCode.ERROR, "database is down")
        ),
        span("ok", 0x0000000000000002, r, s, status=Status(StatusCode.OK)),
        span("unset", 0x0000000000000003, r, s),
    ]


def case_parents():
    r, s = resource_main(), scope_main()
    trace_state = TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
    return [
        span("root", 0x0000000000000010, r, s, trace_state=trace_state),
        span("local child", 0x0000000000000011, r, s, parent=ctx(TRACE_A, 0x10)),
        span(
            "remote child",
            0x0000000000000012,
            r,
            s,
            parent=ctx(TRACE_A, 0xABCDEF0123456789, remote=True),
            kind=SpanKind.SERVER,
        ),
    ]


def case_kinds():
    r, s = resource_main(), scope_main()
    kinds = [
        SpanKind.INTERNAL,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    ]
    spans = [span(k.name.lower(), 0x100 + i, r, s, kind=k) for i, k in enumerate(kinds)]
    spans.append(span("huge times", 0x200, r, s, start_time=2**63 + 5, end_time=2**64 - 1))
    return spans


def case_resources_scopes():
    r1 = resource_main()
    r2 = Resource({"service.name": "worker"})
    s1 = scope_main()
    s2 = InstrumentationScope("celery", None, SCHEMA_121, {"messaging.system": "rabbitmq", "n": 3})
    return [
        span("r1 s1 a", 0x01, r1, s1),
        span("r2 s2 a", 0x02, r2, s2),
        span("r1 s2", 0x03, r1, s2),
        span("r2 s1", 0x04, r2, s1),
        span("r1 s1 b", 0x05, r1, s1),
        span("r1 no scope", 0x06, r1, None),
        span("r2 s2 b", 0x07, r2, s2),
    ]


def case_equal_content():
    # Distinct objects that the SDK's grouping treats as one (==, equal hash) or not.
    r_a = Resource({"service.name": "api", "n": 1})
    r_b = Resource({"n": 1, "service.name": "api"})  # same mapping, other order: merged
    r_bool = Resource({"service.name": "api", "n": True})  # hashes differently: separate
    s_int = InstrumentationScope("lib", "1", "", {"n": 1})
    s_bool = InstrumentationScope("lib", "1", "", {"n": True})  # == s_int: merged
    s_double = InstrumentationScope("lib", "1", "", {"n": 1.0})  # == s_int: merged
    s_other = InstrumentationScope("lib", "2", "", {"n": 1})  # other version: separate
    return [
        span("a int", 0x01, r_a, s_int),
        span("b bool", 0x02, r_b, s_bool),
        span("bool double", 0x03, r_bool, s_double),
        span("a double", 0x04, r_a, s_double),
        span("b other", 0x05, r_b, s_other),
        span("bool int", 0x06, r_bool, s_int),
    ]


def case_dropped_counts():
    attributes = BoundedAttributes(maxlen=2, attributes={"a": 1, "b": 2, "c": 3}, immutable=False)
    events = BoundedList(1)
    events.append(Event("first", None, timestamp=T0 + 1))
    events.append(Event("second", None, timestamp=T0 + 2))
    links = BoundedList(1)
    for i in range(3):
        links.append(Link(ctx(TRACE_B, 0x70 + i)))
    return [
        span(
            "dropped",
            0x7777777777777777,
            resource_main(),
            scope_main(),
            attributes=attributes,
            events=events,
            links=links,
        )
    ]


def case_unicode():
    r = Resource({"service.name": "café ☕"})
    s = InstrumentationScope("bibliothèque", "1.0", "", {"clé": "valeur"})
    attributes = {
        "ключ": "значение",
        "text": 'line1\nline2\t"quoted" \\ \x01 \x1f \x7f \u2028 é 日本語 🚀',
    }
    events = [Event("événement", {"emoji": "🚀"}, timestamp=T0 + 5)]
    return [
        span(
            "GET /café/日本語 🚀",
            0x0123456789ABCDEF,
            r,
            s,
            attributes=attributes,
            events=events,
            status=Status(StatusCode.ERROR, "échec ✗"),
        )
    ]


def case_long_strings():
    # Lengths on both sides of varint boundaries (127/128, 16383/16384), at several depths.
    attributes = {
        "len127": "a" * 127,
        "len128": "b" * 128,
        "len300": "c" * 300,
        "len16384": "d" * 16384,
        "array": ("e" * 127, "f" * 128),
    }
    return [
        span("n" * 200, 0x0808080808080808, resource_main(), scope_main(), attributes=attributes)
    ]


CASES = [
    ("empty", case_empty),
    ("minimal", case_minimal),
    ("attribute_types", case_attribute_types),
    ("events", case_events),
    ("links", case_links),
    ("status", case_status),
    ("parents", case_parents),
    ("kinds", case_kinds),
    ("resources_scopes", case_resources_scopes),
    ("equal_content", case_equal_content),
    ("dropped_counts", case_dropped_counts),
    ("unicode", case_unicode),
    ("long_strings", case_long_strings),
]


def to_chars(value):
    """Python float -> the text of C++'s std::to_chars(first, last, value)."""
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    # repr gives the shortest round-trip digits; only the notation needs choosing: the shorter
    # of %f and %e forms, %f on a tie.
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    exponent = int(exponent or 0)
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + exponent  # decimal point position relative to whole+fraction
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    point -= leading_zeros
    digits = digits.rstrip("0") or "0"
    if digits == "0":
        return sign + "0"
    # Fixed notation.
    if point <= 0:
        fixed = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        fixed = digits + "0" * (point - len(digits))
    else:
        fixed = digits[:point] + "." + digits[point:]
    # Scientific notation, as printf's %e: at least two exponent digits.
    exp = point - 1
    sci = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sci += "e" + ("-" if exp < 0 else "+") + f"{abs(exp):02d}"
    return sign + (fixed if len(fixed) <= len(sci) else sci)


ID_KEYS = ("traceId", "spanId", "parentSpanId")


def hex_ids(node):
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in ID_KEYS else hex_ids(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [hex_ids(v) for v in node]
    return node


def dump_json(node):
    if isinstance(node, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dump_json(v) for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dump_json(v) for v in node) + "]"
    if isinstance(node, float):
        return to_chars(node)
    return json.dumps(node, ensure_ascii=False)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    lines = [
        "# Generated by gen_otlp_trace_vectors.py from the official OpenTelemetry Python SDK.",
        "# Do not edit; regenerate.",
    ]
    for name, make in CASES:
        request = encode_spans(make())
        proto = request.SerializePartialToString()
        assert request.SerializeToString() == proto
        as_dict = json_format.MessageToDict(request, use_integers_for_enums=True)
        text = dump_json(hex_ids(as_dict))
        assert "\n" not in text
        assert json.loads(text) is not None
        lines += [f"case {name}", f"proto {proto.hex()}", f"json {text}"]
    with open(os.path.join(here, "otlp_trace_vectors.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
