"""Samplers with the names and behaviour of opentelemetry.sdk.trace.sampling.

The built-in samplers decide natively. A sampler written in Python (a subclass of `Sampler`
overriding `should_sample`) still works: the tracer asks it before starting each span.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState

from djtrace import _native


class Decision(enum.Enum):
    DROP = 0
    RECORD_ONLY = 1
    RECORD_AND_SAMPLE = 2

    def is_recording(self) -> bool:
        return self in (Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE)

    def is_sampled(self) -> bool:
        return self is Decision.RECORD_AND_SAMPLE


class SamplingResult:
    __slots__ = ("decision", "attributes", "trace_state")

    def __init__(
        self,
        decision: Decision,
        attributes: Mapping[str, Any] | None = None,
        trace_state: TraceState | None = None,
    ) -> None:
        self.decision = decision
        self.attributes = dict(attributes or {})
        self.trace_state = trace_state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.decision}, attributes={self.attributes})"


class Sampler:
    """Base class. Subclasses either wrap a native sampler or override should_sample."""

    _native: Any = None

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self._native is None:
            raise NotImplementedError
        parent = get_current_span(parent_context).get_span_context()
        decision = self._native.should_sample(
            trace_id, parent.is_valid, parent.is_remote, parent.trace_flags.sampled
        )
        state = parent.trace_state if parent.is_valid else None
        return SamplingResult(Decision(decision), None, state)

    def get_description(self) -> str:
        if self._native is None:
            return type(self).__name__
        return self._native.description()

    def _is_native(self) -> bool:
        return self._native is not None and type(self).should_sample is Sampler.should_sample


class StaticSampler(Sampler):
    def __init__(self, decision: Decision) -> None:
        self._decision = decision
        self._native = (
            _native.always_off_sampler() if decision is Decision.DROP
            else _native.always_on_sampler()
        )


ALWAYS_OFF = StaticSampler(Decision.DROP)
ALWAYS_ON = StaticSampler(Decision.RECORD_AND_SAMPLE)


class TraceIdRatioBased(Sampler):
    """Samples a trace when the low 64 bits of its id fall below rate * 2^64."""

    TRACE_ID_LIMIT = (1 << 64) - 1

    def __init__(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("Probability must be in range [0.0, 1.0].")
        self._rate = rate
        self._bound = self.get_bound_for_rate(rate)
        self._native = _native.ratio_sampler(float(rate))

    @classmethod
    def get_bound_for_rate(cls, rate: float) -> int:
        return round(rate * (cls.TRACE_ID_LIMIT + 1))

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def bound(self) -> int:
        return self._bound


class ParentBased(Sampler):
    """Follows the parent's decision and asks `root` for root spans."""

    def __init__(
        self,
        root: Sampler,
        remote_parent_sampled: Sampler = ALWAYS_ON,
        remote_parent_not_sampled: Sampler = ALWAYS_OFF,
        local_parent_sampled: Sampler = ALWAYS_ON,
        local_parent_not_sampled: Sampler = ALWAYS_OFF,
    ) -> None:
        self._root = root
        self._remote_parent_sampled = remote_parent_sampled
        self._remote_parent_not_sampled = remote_parent_not_sampled
        self._local_parent_sampled = local_parent_sampled
        self._local_parent_not_sampled = local_parent_not_sampled
        delegates = (
            root,
            remote_parent_sampled,
            remote_parent_not_sampled,
            local_parent_sampled,
            local_parent_not_sampled,
        )
        if all(d._is_native() for d in delegates):
            self._native = _native.parent_based_sampler(*(d._native for d in delegates))
        else:
            self._native = None

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None):  # noqa: D102
        if self._native is not None:
            return super().should_sample(parent_context, trace_id, name, kind, attributes, links,
                                         trace_state)
        parent = get_current_span(parent_context).get_span_context()
        if not parent.is_valid:
            delegate = self._root
        elif parent.is_remote:
            delegate = (self._remote_parent_sampled if parent.trace_flags.sampled
                        else self._remote_parent_not_sampled)
        else:
            delegate = (self._local_parent_sampled if parent.trace_flags.sampled
                        else self._local_parent_not_sampled)
        return delegate.should_sample(parent_context, trace_id, name, kind, attributes, links,
                                      trace_state)

    def get_description(self) -> str:
        return (
            f"ParentBased{{root:{self._root.get_description()},"
            f"remoteParentSampled:{self._remote_parent_sampled.get_description()},"
            f"remoteParentNotSampled:{self._remote_parent_not_sampled.get_description()},"
            f"localParentSampled:{self._local_parent_sampled.get_description()},"
            f"localParentNotSampled:{self._local_parent_not_sampled.get_description()}}}"
        )


DEFAULT_OFF = ParentBased(ALWAYS_OFF)
DEFAULT_ON = ParentBased(ALWAYS_ON)


class ParentBasedTraceIdRatio(ParentBased):
    def __init__(self, rate: float) -> None:
        super().__init__(root=TraceIdRatioBased(rate))


class SamplerConfigError(ValueError):
    """OTEL_TRACES_SAMPLER or OTEL_TRACES_SAMPLER_ARG is not valid."""


class _FromName(Sampler):
    def __init__(self, name: str, arg: str) -> None:
        try:
            self._native = _native.sampler_from_name(name, arg)
        except ValueError as exc:
            raise SamplerConfigError(str(exc)) from None


def sampler_from_env(environ: Mapping[str, str] | None = None) -> Sampler:
    """The sampler named by OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default
    parentbased_always_on)."""
    env = os.environ if environ is None else environ
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    return _FromName(name, arg)
