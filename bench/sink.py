"""A minimal trace sink for benchmarks: reads each request body and answers 200, without
decoding, so that it costs the measured process as little as possible. Prints its port.

OTLP/HTTP exporters POST to /v1/traces (empty protobuf answer). ddtrace PUTs or POSTs to
/v0.x/traces and reads a JSON answer, so those paths get `{}`. GET /stats returns what was
received so far as JSON ({"requests": n, "bytes": n}); other GETs (an agent's /info probe) 404.
GET /mode/hang makes it a collector that cannot be reached: every export from then on is
accepted by the kernel but never read nor answered (the exporter waits for its timeout), until
GET /mode/ok.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading

_lock = threading.Lock()
_received = {"requests": 0, "bytes": 0}
_answering = threading.Event()
_answering.set()
_HANG_SECONDS = 300  # bounded: a hung exporter connection is dropped after this at the latest


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # noqa: D401
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        if not _answering.is_set():
            _answering.wait(_HANG_SECONDS)
            self.close_connection = True
            return
        size = int(self.headers.get("Content-Length", 0))
        self.rfile.read(size)
        with _lock:
            _received["requests"] += 1
            _received["bytes"] += size
        if self.path.startswith("/v0."):
            self._answer(200, b"{}", "application/json")
        else:
            self._answer(200, b"", "application/x-protobuf")

    do_PUT = do_POST  # noqa: N815

    def do_GET(self):  # noqa: N802
        if self.path in ("/mode/hang", "/mode/ok"):
            if self.path == "/mode/ok":
                _answering.set()
            else:
                _answering.clear()
            self._answer(200, b"", "text/plain")
        elif self.path == "/stats":
            with _lock:
                body = json.dumps(_received).encode()
            self._answer(200, body, "application/json")
        else:
            self._answer(404, b"", "text/plain")


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
