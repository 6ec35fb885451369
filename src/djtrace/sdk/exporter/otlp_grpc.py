"""OTLP/gRPC span exporter: the arguments of
opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter, sent natively over
HTTP/2 (plaintext or TLS), with metadata such as `authorization: Bearer ...`."""

from __future__ import annotations

from typing import Any

from djtrace.config import ConfigError, _parse_bool
from djtrace.sdk.exporter import _env, _OtlpExporterBase

DEFAULT_ENDPOINT = "http://localhost:4317"


class OTLPSpanExporter(_OtlpExporterBase):
    """Sends spans to an OTLP/gRPC endpoint (TraceService/Export).

    `insecure=True` (or an http:// endpoint) means plaintext HTTP/2; otherwise TLS, verified
    against the system CA store or `certificate_file` (OTEL_EXPORTER_OTLP_CERTIFICATE). gRPC
    `credentials` objects are not used: give the CA file instead.
    """

    _grpc = True

    def __init__(
        self,
        endpoint: str | None = None,
        insecure: bool | None = None,
        credentials: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        compression: Any = None,
        certificate_file: str | None = None,
        **_ignored: Any,
    ) -> None:
        if endpoint is None:
            endpoint = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") \
                or DEFAULT_ENDPOINT
        if insecure is None:
            raw = _env("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
            insecure = _parse_bool("OTEL_EXPORTER_OTLP_INSECURE", raw) if raw else None
        if "://" not in endpoint:
            # "collector:4317", as the official exporter accepts: TLS unless insecure.
            endpoint = ("http://" if insecure else "https://") + endpoint
        elif endpoint.startswith("http://") and insecure is False:
            raise ConfigError(f"OTLP gRPC endpoint {endpoint!r} is plaintext but insecure=False")
        if credentials is not None and not certificate_file:
            raise ConfigError(
                "OTLPSpanExporter(credentials=...) is not supported by djtrace's native gRPC "
                "exporter; pass certificate_file= (or OTEL_EXPORTER_OTLP_CERTIFICATE) instead"
            )
        certificate_file = certificate_file or _env(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
        super().__init__(endpoint, headers, timeout, compression, certificate_file, None, None,
                         insecure=bool(insecure) or endpoint.startswith("http://"))


__all__ = ["OTLPSpanExporter"]
