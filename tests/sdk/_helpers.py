"""Helpers shared by the SDK tests (imported relatively: tests/sdk is a package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from djtrace.sdk import (
    Decision,
    InMemorySpanExporter,
    Sampler,
    SamplingResult,
    SpanProcessor,
    TracerProvider,
)


def run_threads(worker, count: int) -> None:
    """worker(n) on `count` threads started together (a barrier), joined before returning."""
    barrier = threading.Barrier(count)

    def start(n: int) -> None:
        barrier.wait()
        worker(n)

    pool = [threading.Thread(target=start, args=(n,)) for n in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


class RecordingProcessor(SpanProcessor):
    """A span processor written in Python that remembers what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.started: list = []
        self.ended: list = []
        self.parent_contexts: list = []
        self.shutdowns = 0
        self.flushes = 0

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span)
        self.parent_contexts.append(parent_context)
        self.events.append(("start", span.name))

    def on_end(self, span) -> None:
        self.ended.append(span)
        self.events.append(("end", span.name))

    def shutdown(self) -> None:
        self.shutdowns += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        return True


class SampleEverything(Sampler):
    """A sampler written in Python; forces djtrace down its Python sampling path."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.RECORD_AND_SAMPLE, None,
                              parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return "SampleEverything"


@dataclass
class Setup:
    """A tracer and the exporter its spans end up in."""

    name: str
    tracer: trace.Tracer
    exporter: InMemorySpanExporter
    provider: TracerProvider

    def spans(self) -> dict:
        """Finished spans by name (names are unique within a test)."""
        finished = self.exporter.get_finished_spans()
        by_name = {s.name: s for s in finished}
        assert len(by_name) == len(finished), [s.name for s in finished]
        return by_name


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Runs `code` in a fresh interpreter and returns the JSON it prints on its last line."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OTEL_", "DJTRACE_"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output\nstderr:\n{proc.stderr}"
    return json.loads(lines[-1])

