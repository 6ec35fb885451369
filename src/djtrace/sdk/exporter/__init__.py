"""Native OTLP exporters (HTTP/protobuf and gRPC) with the official exporters' arguments.

Encoding, compression, TLS, HTTP/2 and retries all run on the batch processor's native worker
thread, without the GIL; only a log line about a failure briefly takes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from djtrace import _native
from djtrace.config import ConfigError, parse_headers

_log = logging.getLogger("djtrace.exporter")


def _log_from_native(level: int, message: str) -> None:
    _log.log(level, "%s", message)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _compression_name(value: Any) -> str:
    if value is None:
        return "none"
    name = getattr(value, "value", value)  # the official Compression enum, or a string
    name = str(name).strip().lower()
    if name in ("", "nocompression", "none"):
        return "none"
    if name != "gzip":
        raise ConfigError(f"OTLP compression must be none or gzip, got {value!r}")
    return "gzip"


class _OtlpExporterBase:
    _grpc = False
    _blocking = False

    def __init__(self, endpoint: str, headers: Any, timeout: float | None, compression: Any,
                 certificate_file: str | None, client_key_file: str | None,
                 client_certificate_file: str | None, insecure: bool) -> None:
        name = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        if headers is None:
            raw = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
            headers = parse_headers(name, raw) if raw else {}
        else:
            headers = parse_headers("headers", headers)
        if timeout is None:
            raw = _env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
            try:
                timeout = int(raw) / 1000.0 if raw else 10.0
            except ValueError:
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, got {raw!r}") from None
        if compression is None:
            compression = _env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                               "OTEL_EXPORTER_OTLP_COMPRESSION")
        self._endpoint = endpoint
        self._headers = dict(headers)
        self._timeout = float(timeout)
        try:
            self._exporter = _native.otlp_exporter(
                self._grpc, endpoint, list(headers.items()), _compression_name(compression),
                self._timeout, certificate_file or "", client_key_file or "",
                client_certificate_file or "", bool(insecure), _log_from_native,
            )
        except ValueError as exc:
            raise ConfigError(f"OTLP exporter endpoint {endpoint!r}: {exc}") from None

    def _native_exporter(self):
        return self._exporter

    def stats(self) -> dict:
        """batches/spans exported and failed, retries, connections, last_error."""
        return _native.otlp_exporter_stats(self._exporter)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def export(self, spans: Sequence[Any]) -> Any:
        raise TypeError(
            f"{type(self).__name__} runs inside djtrace's native span processors; add it with "
            "BatchSpanProcessor(exporter) or SimpleSpanProcessor(exporter)"
        )


def otlp_exporter_from_config(cfg: Any) -> _OtlpExporterBase:
    """The OTLP exporter that a djtrace.config.Config describes."""
    if cfg.otlp_protocol == "grpc":
        from djtrace.sdk.exporter.otlp_grpc import OTLPSpanExporter
    else:
        from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter as OTLPSpanExporter
    kwargs: dict = dict(
        endpoint=cfg.resolved_endpoint(),
        headers=cfg.otlp_headers,
        timeout=cfg.otlp_timeout_ms / 1000.0,
        compression=cfg.otlp_compression,
    )
    if cfg.otlp_protocol == "grpc":
        kwargs["insecure"] = cfg.otlp_insecure
        kwargs["certificate_file"] = cfg.otlp_certificate
    else:
        kwargs["certificate_file"] = cfg.otlp_certificate
        kwargs["client_key_file"] = cfg.otlp_client_key
        kwargs["client_certificate_file"] = cfg.otlp_client_certificate
    return OTLPSpanExporter(**kwargs)


__all__ = ["otlp_exporter_from_config", "ConfigError"]
