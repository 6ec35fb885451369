"""OTLP/HTTP (protobuf) span exporter: the arguments of
opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter, sent natively."""

from __future__ import annotations

from typing import Any

from djtrace.config import check_endpoint
from djtrace.sdk.exporter import _env, _OtlpExporterBase

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


class OTLPSpanExporter(_OtlpExporterBase):
    """Sends spans as OTLP/HTTP protobuf (http or https, gzip, headers, retries).

    Unset arguments come from OTEL_EXPORTER_OTLP_[TRACES_]* variables, then the official
    defaults (http://localhost:4318/v1/traces, no compression, 10 s timeout).
    """

    _grpc = False

    def __init__(
        self,
        endpoint: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        headers: Any = None,
        timeout: float | None = None,
        compression: Any = None,
        session: Any = None,
    ) -> None:
        if endpoint is None:
            specific = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            generic = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
            if specific:
                endpoint = check_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", specific)
            elif generic:
                base = check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", generic)
                endpoint = base.rstrip("/") + "/v1/traces"
            else:
                endpoint = DEFAULT_ENDPOINT
        else:
            endpoint = check_endpoint("endpoint", endpoint)
        certificate_file = certificate_file or _env(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
        client_key_file = client_key_file or _env(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY")
        client_certificate_file = client_certificate_file or _env(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
        super().__init__(endpoint, headers, timeout, compression, certificate_file,
                         client_key_file, client_certificate_file, insecure=False)


__all__ = ["OTLPSpanExporter"]
