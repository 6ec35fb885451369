"""djtrace: OpenTelemetry-compatible tracing for Django, with a C++ hot path."""

from djtrace._version import __version__

__all__ = ["__version__"]
