"""djtrace: OpenTelemetry-compatible tracing for Django, with a C++ hot path.

`djtrace.configure()` builds the tracer provider from the environment (OTEL_* and DJTRACE_*
variables), optional Django settings and keyword overrides, and installs it globally.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from djtrace._version import __version__
from djtrace.config import Config, ConfigError, from_sources

logger = logging.getLogger("djtrace")

_lock = threading.Lock()
_provider: Any = None
_config: Config | None = None


def configure(settings: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """Configures tracing once for the process and returns the tracer provider.

    `settings` is the DJTRACE Django setting (a dict); keyword arguments override everything
    (same keys, see djtrace.config.Config). A second call returns the provider already built.
    Raises ConfigError naming the variable and the value when a setting is invalid. With
    OTEL_SDK_DISABLED=true every tracer is a no-op that costs next to nothing.
    """
    global _provider, _config
    with _lock:
        if _provider is not None:
            return _provider
        cfg = from_sources(settings, None, overrides)
        from opentelemetry import trace

        from djtrace import pii

        pii.build_redactor(cfg.pii)  # validate before anything is installed
        if cfg.disabled:
            from djtrace.sdk.trace import DisabledTracerProvider

            provider = DisabledTracerProvider()
        else:
            provider = build_provider(cfg)
        _install_propagators(cfg)
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            logger.warning(
                "djtrace: another tracer provider was already installed; djtrace's provider "
                "is not the global one"
            )
        _provider, _config = provider, cfg
        return provider


def build_provider(cfg: Config) -> Any:
    """A TracerProvider with the sampler, resource and exporters `cfg` describes."""
    from djtrace.sdk.resources import SERVICE_NAME, Resource, host_attributes, process_attributes
    from djtrace.sdk.trace import TracerProvider
    from djtrace.sdk.trace.export import BatchSpanProcessor
    from djtrace.sdk.trace.sampling import _FromName

    # The command line is left out: it can carry secrets (`--api-token ...`), and the resource
    # is not redacted (it is configuration, shared by every span).
    process = {k: v for k, v in process_attributes().items() if k != "process.command_args"}
    attributes = {**process, **host_attributes(), **cfg.resource_attributes}
    if cfg.service_name:
        attributes[SERVICE_NAME] = cfg.service_name
    resource = Resource.create(attributes)
    provider = TracerProvider(sampler=_FromName(cfg.sampler, cfg.sampler_arg), resource=resource,
                              redaction=cfg.pii)
    for exporter in build_exporters(cfg):
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=cfg.bsp_max_queue_size,
                schedule_delay_millis=cfg.bsp_schedule_delay_ms,
                max_export_batch_size=cfg.bsp_max_export_batch_size,
                export_timeout_millis=cfg.bsp_export_timeout_ms,
            )
        )
    return provider


def build_exporters(cfg: Config) -> list:
    from djtrace.sdk.trace.export import ConsoleSpanExporter, OtlpJsonFileSpanExporter

    exporters: list = []
    for name in cfg.exporters:
        if name == "console":
            exporters.append(ConsoleSpanExporter(verbose=cfg.console_verbose))
        elif name == "file":
            exporters.append(OtlpJsonFileSpanExporter(cfg.file_path))
        elif name == "otlp":
            from djtrace.sdk.exporter import otlp_exporter_from_config

            exporters.append(otlp_exporter_from_config(cfg))
    return exporters


def _install_propagators(cfg: Config) -> None:
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    known = {"tracecontext": TraceContextTextMapPropagator, "baggage": W3CBaggagePropagator}
    propagate.set_global_textmap(CompositePropagator([known[n]() for n in cfg.propagators]))


def stats() -> dict:
    """What djtrace has done in this process: spans started and sampled out, per processor
    queue and export counters (dropped spans included), internal errors and calls on ended
    spans. Never any span content."""
    from djtrace.sdk import _context
    from djtrace.sdk import trace as sdk_trace

    out: dict = {
        "internal_errors": sdk_trace.internal_error_count,
        "calls_on_ended_spans": _context.misuse_count,
    }
    provider = _provider
    if provider is not None and hasattr(provider, "_counters"):
        out.update(provider._counters())
        from djtrace import pii

        out["pii"] = pii.counters()
        out["processors"] = [
            p.stats() for p in getattr(provider, "_processors", []) if hasattr(p, "stats")
        ]
        out["exporters"] = [
            p.span_exporter.stats() for p in getattr(provider, "_processors", [])
            if hasattr(getattr(p, "span_exporter", None), "stats")
        ]
    return out


def request_span() -> Any:
    """The SERVER span of the Django request being served in this context.

    Inside middleware, trace.get_current_span() is that middleware's own span (djtrace traces
    each middleware); annotate the request with this instead. Outside a request it returns
    OpenTelemetry's invalid span, on which every call is a harmless no-op.
    """
    current, invalid = _request_span_lookup or _bind_request_span_lookup()
    span = current() if current is not None else None
    return span if span is not None else invalid


# (current_request_span or None without Django, INVALID_SPAN), imported on first use: the
# application's middleware calls request_span() on every request, and an import statement
# in a function runs the import machinery at each call.
_request_span_lookup: tuple = ()


def _bind_request_span_lookup() -> tuple:
    global _request_span_lookup
    from opentelemetry import trace

    try:
        from djtrace.integrations.django.handlers import current_request_span
    except ImportError:
        current_request_span = None
    _request_span_lookup = (current_request_span, trace.INVALID_SPAN)
    return _request_span_lookup


def get_config() -> Config | None:
    """The configuration in force, once configure() has run."""
    return _config


def _reset_for_tests() -> None:
    """Forgets the configured provider (tests only; the global OpenTelemetry one stays)."""
    global _provider, _config
    with _lock:
        if _provider is not None and hasattr(_provider, "shutdown"):
            _provider.shutdown()
        _provider, _config = None, None


__all__ = [
    "Config",
    "ConfigError",
    "__version__",
    "build_provider",
    "configure",
    "get_config",
    "request_span",
    "stats",
]
