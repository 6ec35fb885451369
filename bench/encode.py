"""Encoder throughput on one core: djtrace's native OTLP encoders (bench/native/encode_bench.cc)
next to opentelemetry-sdk's Python encoder on the same span shape.

    .venv/bin/python bench/encode.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def native() -> dict:
    build = os.path.join(ROOT, "build", "bench")
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DDJTRACE_BUILD_BENCH=ON",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build, "--target", "encode_bench"], check=True,
                   capture_output=True)
    out = subprocess.run([os.path.join(build, "encode_bench")], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def official() -> float:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "django-order-service",
                                                 "service.version": "1.0.0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("djtrace.django", "0.1.0")
    for i in range(512):
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as s:
            s.set_attributes({
                "db.system.name": "postgresql", "db.namespace": "orders",
                "db.operation.name": "SELECT", "db.collection.name": "orders",
                "db.query.text": 'SELECT "orders"."id", "orders"."status" FROM "orders" '
                                 'WHERE "orders"."id" = %s LIMIT 21',
                "server.address": "127.0.0.1", "server.port": 5432,
                "db.response.returned_rows": 1, "code.filepath": "/app/orders/views.py",
                "code.lineno": 42,
            })
            if i % 2 == 0:
                s.add_event("cache.miss")
    spans = exporter.get_finished_spans()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        encode_spans(spans).SerializeToString()
        done += len(spans)
    return done / (time.perf_counter() - start)


def main() -> None:
    n = native()
    o = official()
    print("| encoder (one core, batches of 512 ten-attribute spans) | spans/s |")
    print("|---|---|")
    print(f"| djtrace OTLP protobuf | {n['protobuf_spans_per_s']:,.0f} |")
    print(f"| djtrace OTLP protobuf + gzip (level {n['gzip_level']}, as exported) | "
          f"{n['protobuf_gzip_spans_per_s']:,.0f} |")
    print(f"| djtrace OTLP protobuf + gzip (level 6, zlib's default) | "
          f"{n['protobuf_gzip6_spans_per_s']:,.0f} |")
    print(f"| djtrace OTLP/JSON | {n['json_spans_per_s']:,.0f} |")
    print(f"| opentelemetry-sdk (Python encoder + protobuf) | {o:,.0f} |")
    print(f"\nprotobuf: {n['protobuf_bytes_per_span']:.0f} B/span, gzip: "
          f"{n['gzip_bytes_per_span']:.0f} B/span (level 6: {n['gzip6_bytes_per_span']:.0f}); "
          "djtrace/official: "
          f"{n['protobuf_spans_per_s'] / o:.0f}x")


if __name__ == "__main__":
    sys.exit(main())
