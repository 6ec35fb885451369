"""Span processors and exporters with the names and arguments of opentelemetry.sdk.trace.export.

djtrace's processors run natively: a span that ends is pushed onto a native queue, and a native
worker thread batches, encodes and sends it without the GIL. An exporter written in Python
(any object with export(spans) -> SpanExportResult) still works: the worker takes the GIL only
around its call.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Sequence
from typing import Any

from djtrace import _native


class SpanExportResult(enum.Enum):
    SUCCESS = 0
    FAILURE = 1


class SpanExporter:
    """Base class of exporters written in Python."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _native_exporter(exporter: Any):
    """The native exporter behind `exporter`, or a bridge calling its Python export()."""
    factory = getattr(exporter, "_native_exporter", None)
    if factory is not None:
        return factory(), bool(getattr(exporter, "_blocking", False))
    from djtrace.sdk.trace import ReadableSpan

    # The native side holds these callables where the garbage collector cannot see, so a
    # reference from them to the exporter closes an uncollectable cycle (module globals ->
    # provider -> native processor -> callable -> exporter -> its class -> module globals) that
    # nanobind reports as leaked instances at interpreter exit. Shutting down, which the
    # provider does at exit, lets go of the exporter and so breaks the cycle.
    held = [exporter]

    def export(batch: list) -> bool:
        target = held[0]
        if target is None:
            return False
        result = target.export([ReadableSpan(d) for d in batch])
        return getattr(result, "name", None) == "SUCCESS" or result is True

    def shutdown() -> None:
        target, held[0] = held[0], None
        if target is not None and hasattr(target, "shutdown"):
            target.shutdown()

    return _native.callback_exporter(export, shutdown), True


class ConfigError(ValueError):
    """A span processor or exporter setting is not valid; the message names it."""


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _arg_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"BatchSpanProcessor {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"BatchSpanProcessor {name} must be at least {minimum}, got {value!r}")
    return value


def _arg_millis(name: str, value: Any) -> int:
    # Durations may be floats, as the official SDK's are; anything else (a string, a bool, NaN)
    # is a mistake that must name the argument rather than fail inside int().
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(
            f"BatchSpanProcessor {name} must be a number of milliseconds, got {value!r}")
    if value < 0:
        raise ConfigError(f"BatchSpanProcessor {name} must be at least 0, got {value!r}")
    return int(value)


class SimpleSpanProcessor:
    """Exports each span as it ends, on the thread that ends it (tests, debugging)."""

    _blocks_on_end = True

    def __init__(self, span_exporter: Any) -> None:
        self.span_exporter = span_exporter
        exporter, _ = _native_exporter(span_exporter)
        self._native = _native.SimpleProcessor(exporter, 30000)
        self._export_timeout_millis = 30000

    def _native_processor(self):
        return self._native

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._native.force_flush(int(timeout_millis))

    def shutdown(self) -> None:
        self._native.shutdown(30000)


class BatchSpanProcessor:
    """Queues ended spans natively and exports them in batches from a native worker thread.

    Defaults come from OTEL_BSP_MAX_QUEUE_SIZE (2048), OTEL_BSP_SCHEDULE_DELAY (5000 ms),
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512) and OTEL_BSP_EXPORT_TIMEOUT (30000 ms). A full queue
    drops the span and counts it (see stats()); it never blocks the application.
    """

    _blocks_on_end = False

    def __init__(
        self,
        span_exporter: Any,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        if max_queue_size is None:
            max_queue_size = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1)
        if schedule_delay_millis is None:
            schedule_delay_millis = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000, 0)
        if max_export_batch_size is None:
            max_export_batch_size = _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1)
        if export_timeout_millis is None:
            export_timeout_millis = _env_int("OTEL_BSP_EXPORT_TIMEOUT", 30000, 0)
        max_queue_size = _arg_int("max_queue_size", max_queue_size, 1)
        max_export_batch_size = _arg_int("max_export_batch_size", max_export_batch_size, 1)
        schedule_delay_millis = _arg_millis("schedule_delay_millis", schedule_delay_millis)
        export_timeout_millis = _arg_millis("export_timeout_millis", export_timeout_millis)
        if max_export_batch_size > max_queue_size:
            raise ConfigError(
                "max_export_batch_size must be less than or equal to max_queue_size "
                f"(got {max_export_batch_size} > {max_queue_size})"
            )
        self.span_exporter = span_exporter
        self.max_queue_size = max_queue_size
        self.schedule_delay_millis = schedule_delay_millis
        self.max_export_batch_size = max_export_batch_size
        self._export_timeout_millis = export_timeout_millis
        exporter, _ = _native_exporter(span_exporter)
        self._native = _native.BatchProcessor(
            exporter, max_queue_size, schedule_delay_millis, max_export_batch_size,
            export_timeout_millis,
        )

    def _native_processor(self):
        return self._native

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def stats(self) -> dict:
        """Counters: spans_queued, spans_dropped, spans_exported, spans_failed, batches_*."""
        return self._native.stats()

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        timeout = self._export_timeout_millis if timeout_millis is None else timeout_millis
        return self._native.force_flush(int(timeout))

    def shutdown(self) -> None:
        self._native.shutdown(int(self._export_timeout_millis))


class ConsoleSpanExporter:
    """Prints each trace as an indented tree once its local root span has ended.

    `out` is any text stream (default sys.stdout); `verbose` shows every attribute and the span
    ids; `color` defaults to whether `out` is a terminal and NO_COLOR is unset.
    """

    def __init__(self, service_name: str | None = None, out: Any = None, verbose: bool = False,
                 color: bool | None = None) -> None:
        import sys

        self.out = out if out is not None else sys.stdout
        if color is None:
            isatty = getattr(self.out, "isatty", None)
            color = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
        self._exporter = _native.ConsoleExporter(self.out, verbose, color)

    def _native_exporter(self):
        return self._exporter

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OtlpJsonFileSpanExporter:
    """Appends OTLP/JSON lines to `path`, one ExportTraceServiceRequest per batch: the
    OpenTelemetry Collector's file-exporter format (readable by its otlpjsonfile receiver).
    Several processes may share one file: each line is written with a single append."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigError(f"OtlpJsonFileSpanExporter: directory does not exist: {directory!r}")
        self._exporter = _native.OtlpJsonFileExporter(self.path)

    def _native_exporter(self):
        return self._exporter

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class InMemorySpanExporter:
    """Keeps finished spans in native memory; for tests."""

    def __init__(self) -> None:
        self._exporter = _native.InMemoryExporter()

    def _native_exporter(self):
        return self._exporter

    def get_finished_spans(self) -> tuple:
        from djtrace.sdk.trace import ReadableSpan

        return tuple(ReadableSpan(d) for d in self._exporter.snapshot())

    def clear(self) -> None:
        self._exporter.clear()

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


__all__ = [
    "BatchSpanProcessor",
    "ConfigError",
    "ConsoleSpanExporter",
    "OtlpJsonFileSpanExporter",
    "InMemorySpanExporter",
    "SimpleSpanProcessor",
    "SpanExportResult",
    "SpanExporter",
]
