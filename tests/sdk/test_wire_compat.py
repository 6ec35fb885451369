"""Wire compatibility: the same sequence of OpenTelemetry API calls, exported by
opentelemetry-sdk's exporters and by djtrace's native ones, must reach a real OTLP receiver
(HTTP and gRPC) as the same messages, field by field. Ids are compared by their role (which
span is whose parent), not by value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from support.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver

SCRIPT = textwrap.dedent('''
    import sys
    from opentelemetry import trace, propagate, baggage, context
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    sdk, protocol, endpoint = sys.argv[1], sys.argv[2], sys.argv[3]
    if sdk == "djtrace":
        from djtrace.sdk import TracerProvider, BatchSpanProcessor, Resource, SpanLimits
        if protocol == "grpc":
            from djtrace.sdk.exporter.otlp_grpc import OTLPSpanExporter
        else:
            from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter
    else:
        from opentelemetry.sdk.trace import TracerProvider, SpanLimits
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.resources import Resource
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    kwargs = {"insecure": True} if protocol == "grpc" else {}
    provider = TracerProvider(
        resource=Resource({"service.name": "wire", "deployment.environment": "test",
                           "k8s.pod.name": "pod-1"}, "https://opentelemetry.io/schemas/1.21.0"),
        span_limits=SpanLimits(max_span_attributes=8, max_events=3, max_attribute_length=16),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, **kwargs)))
    trace.set_tracer_provider(provider)
    t1 = trace.get_tracer("wire.one", "1.2.3", schema_url="https://example.com/s1")
    t2 = trace.get_tracer("wire.two")
    T = 1_700_000_000_000_000_000

    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "tracestate": "vendor=abc,other=xyz"}
    remote = propagate.extract(carrier)
    with t1.start_as_current_span(
        "GET /api/orders/<int:pk>/", context=remote, kind=SpanKind.SERVER, start_time=T,
        attributes={"http.request.method": "GET", "http.response.status_code": 200,
                    "ratio": 0.25, "ok": True, "tags": ["a", "b"], "ints": [1, 2, 3],
                    "floats": [1.5, 2.5], "bools": [True, False], "empty": [],
                    "long": "x" * 40, "unicode": "zoë ✓"},
        end_on_exit=False,
    ) as root:
        root.add_event("started", {"step": 1}, timestamp=T + 10)
        root.update_name("GET api/orders/<int:pk>/")
        linked = trace.SpanContext(0x1234, 0x5678, is_remote=True,
                                   trace_flags=trace.TraceFlags(1))
        with t2.start_as_current_span(
            "SELECT orders", kind=SpanKind.CLIENT, start_time=T + 100,
            links=[Link(linked, {"link.kind": "follows"})], end_on_exit=False,
        ) as db:
            db.set_attribute("db.system.name", "postgresql")
            db.set_attributes({"db.query.text": "SELECT * FROM orders WHERE id = %s",
                               "server.port": 5432})
            db.set_status(Status(StatusCode.OK))
            db.set_status(Status(StatusCode.ERROR, "ignored after OK"))
            db.end(end_time=T + 200)
        with t2.start_as_current_span("process", kind=SpanKind.PRODUCER, start_time=T + 300,
                                      end_on_exit=False) as prod:
            for i in range(5):
                prod.add_event(f"e{i}", {"i": i}, timestamp=T + 301 + i)
            for i in range(10):
                prod.set_attribute(f"a{i}", i)
            prod.set_status(StatusCode.ERROR, "something failed")
            prod.end(end_time=T + 400)
        span = t1.start_span("manual", kind=SpanKind.CONSUMER, start_time=T + 500)
        span.add_link(linked, {"late": True})
        span.end(end_time=T + 600)
        root.end(end_time=T + 1000)
    root2 = t1.start_span("root-two", start_time=T + 2000)
    root2.set_status(Status(StatusCode.UNSET))
    root2.end(end_time=T + 3000)
    provider.shutdown()
''')


def _normalise(requests) -> list:
    """The requests as dicts, ids replaced by names in order of first appearance."""
    names: dict = {}

    def name(value: str) -> str:
        return names.setdefault(value, f"id{len(names)}") if value else value

    out = []
    for req in requests:
        d = MessageToDict(req, preserving_proto_field_name=True)
        for rs in d.get("resource_spans", []):
            for ss in rs.get("scope_spans", []):
                for span in ss.get("spans", []):
                    for key in ("trace_id", "span_id", "parent_span_id"):
                        if key in span:
                            span[key] = name(span[key])
                    for link in span.get("links", []):
                        for key in ("trace_id", "span_id"):
                            link[key] = name(link[key])
                ss["spans"].sort(key=lambda s: s["start_time_unix_nano"])
        out.append(d)
    return out


def _run(sdk: str, protocol: str, endpoint: str, tmp_path: Path) -> None:
    script = tmp_path / "emit.py"  # the same file for both SDKs: stack traces compare equal
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), sdk, protocol, endpoint],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_same_api_calls_same_messages(protocol: str, tmp_path: Path) -> None:
    receiver_cls = OtlpHttpReceiver if protocol == "http" else OtlpGrpcReceiver
    decoded = {}
    for sdk in ("otel-sdk", "djtrace"):
        with receiver_cls() as receiver:
            _run(sdk, protocol, receiver.endpoint, tmp_path)
            receiver.received.wait_for(5)
            decoded[sdk] = _normalise(receiver.received.requests)
    official, ours = decoded["otel-sdk"], decoded["djtrace"]
    assert sum(len(ss["spans"]) for r in official for rs in r["resource_spans"]
               for ss in rs["scope_spans"]) == 5
    assert ours == official
