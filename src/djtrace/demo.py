"""A small traced program: a request-shaped trace printed to the terminal as a tree and written
to an OTLP/JSON-lines file. `python -m djtrace.demo [--file PATH]`."""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import djtrace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default="var/demo-traces.jsonl", help="OTLP/JSON lines output")
    args = parser.parse_args(argv)
    import os

    os.makedirs(os.path.dirname(os.path.abspath(args.file)), exist_ok=True)
    provider = djtrace.configure(
        service_name="djtrace-demo", exporters=["console", "file"], file_path=args.file,
        bsp_schedule_delay_ms=200,
    )
    tracer = trace.get_tracer("djtrace.demo")
    with tracer.start_as_current_span(
        "POST api/orders/", kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "api/orders/",
                    "http.response.status_code": 201},
    ):
        with tracer.start_as_current_span("OrderViewSet.create"):
            with tracer.start_as_current_span(
                "SELECT auth_user", kind=SpanKind.CLIENT,
                attributes={"db.system.name": "sqlite",
                            "db.query.text": 'SELECT "auth_user"."id" FROM "auth_user" '
                                             'WHERE "auth_user"."id" = %s'},
            ):
                time.sleep(0.002)
            with tracer.start_as_current_span(
                "INSERT orders", kind=SpanKind.CLIENT,
                attributes={"db.system.name": "sqlite",
                            "db.query.text": 'INSERT INTO "orders" ("user_id", "total_amount") '
                                             'VALUES (%s, %s)'},
            ):
                time.sleep(0.003)
            with tracer.start_as_current_span("payment_gateway.charge",
                                              kind=SpanKind.CLIENT) as charge:
                charge.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()
    print(f"\ntraces written to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
