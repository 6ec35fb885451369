"""A stand-in for the payment gateway PaymentService calls (no real one is reachable from a
development machine or a test): `python fake_gateway.py [--host H] [--port P]`.

POST /v1/charges {"amount": "99.00", "method": "credit_card", "order_id": 1}
    200 {"id": "ch_...", "status": "succeeded"}
    402 {"error": {"code": "insufficient_funds", ...}} when the amount exceeds --decline-over
        (default 5000: the card limit), so a decline and its error span can be shown
GET /health  200

Each charge is logged with the traceparent header it arrived with: the trace of the request
that paid continues here, as it would at a real gateway that takes part in tracing.
"""

import argparse
import json
import secrets
import sys
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class GatewayHandler(BaseHTTPRequestHandler):
    server_version = "FakeGateway/1.0"
    decline_over = Decimal("5000")

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": {"code": "not_found", "message": self.path}})

    def do_POST(self):  # noqa: N802
        if self.path != "/v1/charges":
            self._reply(404, {"error": {"code": "not_found", "message": self.path}})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            charge = json.loads(self.rfile.read(length))
            amount = Decimal(str(charge["amount"]))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            self._reply(400, {"error": {"code": "invalid_request", "message": "bad charge"}})
            return
        traceparent = self.headers.get("traceparent", "-")
        if amount > self.decline_over:
            self.log_message("declined %s traceparent=%s", amount, traceparent)
            self._reply(402, {"error": {"code": "insufficient_funds",
                                        "message": "The card has insufficient funds."}})
            return
        charge_id = "ch_" + secrets.token_hex(12)
        self.log_message("charged %s as %s traceparent=%s", amount, charge_id, traceparent)
        self._reply(200, {"id": charge_id, "status": "succeeded", "amount": str(amount)})

    def _reply(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-gateway: " + (fmt % args) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fake payment gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--decline-over", default="5000", help="decline amounts above this")
    args = parser.parse_args(argv)
    GatewayHandler.decline_over = Decimal(args.decline_over)
    server = ThreadingHTTPServer((args.host, args.port), GatewayHandler)
    server.daemon_threads = True
    print(f"fake-gateway: listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
