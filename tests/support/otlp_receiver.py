"""Real OTLP receivers for tests: OTLP/HTTP (protobuf, gzip) and OTLP/gRPC (grpcio with the
official TraceService), decoding every request with the official opentelemetry-proto classes.

Both keep the raw request bytes too, so tests can assert on exactly what left the process.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    requests: list = field(default_factory=list)  # ExportTraceServiceRequest messages
    raw: list = field(default_factory=list)  # decompressed request bodies
    headers: list = field(default_factory=list)  # dict of headers / metadata per request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list:
        """(resource, scope, span) triples of every span received so far."""
        out = []
        with self.lock:
            for req in self.requests:
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            out.append((rs.resource, ss.scope, span))
        return out

    def span_count(self) -> int:
        return len(self.spans())

    def raw_bytes(self) -> bytes:
        with self.lock:
            return b"".join(self.raw)

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.time() + timeout
        while time.time() < deadline:
            spans = self.spans()
            if len(spans) >= count:
                return spans
            time.sleep(0.02)
        return self.spans()


class OtlpHttpReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1. `responses` is a list of status codes to answer with
    in order (then 200), for retry tests; `hang` makes it accept and never answer."""

    def __init__(self, responses: list[int] | None = None, hang: bool = False,
                 retry_after: str | None = None, port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        self.received = Received()
        self.responses = list(responses or [])
        self.hang = hang
        self.retry_after = retry_after
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: D401 - silence
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.hang:
                    time.sleep(3600)
                    return
                if receiver.responses:
                    status = receiver.responses.pop(0)
                    self.send_response(status)
                    if receiver.retry_after and status in (429, 503):
                        self.send_header("Retry-After", receiver.retry_after)
                    payload = b"try again" if status != 400 else b"bad request: malformed"
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with receiver.received.lock:
                    receiver.received.requests.append(req)
                    receiver.received.raw.append(body)
                    receiver.received.headers.append(
                        {k.lower(): v for k, v in self.headers.items()}
                    )
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.endpoint = f"https://localhost:{self.port}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpHttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class OtlpGrpcReceiver:
    """An OTLP/gRPC receiver (grpcio server with the official TraceService) on 127.0.0.1.

    `codes` is a list of grpc.StatusCode to fail with in order before succeeding. With
    `tls=(cert_pem, key_pem)` it serves TLS.
    """

    def __init__(self, codes: list | None = None, tls: tuple[bytes, bytes] | None = None) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        self.received = Received()
        self.codes = list(codes or [])
        self.attempts = 0
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802
                receiver.attempts += 1
                if receiver.codes:
                    context.abort(receiver.codes.pop(0), "injected failure")
                metadata = {k: v for k, v in context.invocation_metadata()}
                with receiver.received.lock:
                    receiver.received.requests.append(request)
                    receiver.received.raw.append(request.SerializeToString())
                    receiver.received.headers.append(metadata)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        if tls:
            creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
            self.endpoint = f"https://localhost:{self.port}"
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(grace=None)


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_cert(tmp_path) -> tuple[bytes, bytes, str, str]:
    """A self-signed certificate for localhost/127.0.0.1: (cert_pem, key_pem, cert_path,
    key_path)."""
    import subprocess

    key = tmp_path / "key.pem"
    cert = tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert.read_bytes(), key.read_bytes(), str(cert), str(key)
