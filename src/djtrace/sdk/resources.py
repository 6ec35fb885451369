"""Resources: who produced the telemetry. The same API as opentelemetry.sdk.resources."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from djtrace import _native
from djtrace._version import __version__

SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
SERVICE_NAMESPACE = "service.namespace"
SERVICE_INSTANCE_ID = "service.instance.id"
DEPLOYMENT_ENVIRONMENT = "deployment.environment"
TELEMETRY_SDK_NAME = "telemetry.sdk.name"
TELEMETRY_SDK_VERSION = "telemetry.sdk.version"
TELEMETRY_SDK_LANGUAGE = "telemetry.sdk.language"
PROCESS_PID = "process.pid"
PROCESS_EXECUTABLE_NAME = "process.executable.name"
PROCESS_EXECUTABLE_PATH = "process.executable.path"
PROCESS_COMMAND_ARGS = "process.command_args"
PROCESS_RUNTIME_NAME = "process.runtime.name"
PROCESS_RUNTIME_VERSION = "process.runtime.version"
PROCESS_RUNTIME_DESCRIPTION = "process.runtime.description"
HOST_NAME = "host.name"
HOST_ARCH = "host.arch"
OS_TYPE = "os.type"

OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"

_VALID_TYPES = (str, bool, int, float)


class ResourceError(ValueError):
    """A resource setting (OTEL_RESOURCE_ATTRIBUTES) could not be parsed."""


def parse_resource_attributes(value: str) -> dict[str, str]:
    """Parses OTEL_RESOURCE_ATTRIBUTES: comma-separated, percent-encoded key=value pairs."""
    out: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ResourceError(
                f"OTEL_RESOURCE_ATTRIBUTES: '{item}' is not a key=value pair (in {value!r})"
            )
        key, val = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ResourceError(f"OTEL_RESOURCE_ATTRIBUTES: empty key in {value!r}")
        out[unquote(key)] = unquote(val.strip())
    return out


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if not isinstance(key, str) or not key:
            continue
        if isinstance(value, _VALID_TYPES):
            cleaned[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, _VALID_TYPES) for v in value):
            cleaned[key] = tuple(value)
    return cleaned


def process_attributes() -> dict[str, Any]:
    """Process attributes, as the official SDK's process detector sets them."""
    attrs: dict[str, Any] = {
        PROCESS_PID: os.getpid(),
        PROCESS_RUNTIME_NAME: sys.implementation.name,
        PROCESS_RUNTIME_VERSION: ".".join(str(v) for v in sys.implementation.version[:3]),
        PROCESS_RUNTIME_DESCRIPTION: sys.version,
        PROCESS_EXECUTABLE_PATH: sys.executable,
        PROCESS_EXECUTABLE_NAME: os.path.basename(sys.executable),
    }
    if sys.argv:
        attrs[PROCESS_COMMAND_ARGS] = tuple(str(a) for a in sys.argv)
    return attrs


def host_attributes() -> dict[str, Any]:
    """Host attributes, as the official SDK's host detector sets them."""
    return {HOST_NAME: platform.node(), HOST_ARCH: platform.machine(),
            OS_TYPE: platform.system().lower()}


_DETECTORS = {"process": process_attributes, "host": host_attributes}
OTEL_EXPERIMENTAL_RESOURCE_DETECTORS = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"


class Resource:
    """An immutable set of attributes describing the entity that produces telemetry."""

    __slots__ = ("_attributes", "_schema_url", "_native")

    def __init__(self, attributes: Mapping[str, Any] | None = None, schema_url: str | None = None):
        self._attributes = _clean(attributes)
        self._schema_url = schema_url or ""
        self._native = None

    @staticmethod
    def create(
        attributes: Mapping[str, Any] | None = None, schema_url: str | None = None
    ) -> Resource:
        """Default attributes, then OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, then `attributes`.

        Raises ResourceError naming the variable when OTEL_RESOURCE_ATTRIBUTES is malformed.
        """
        base = {
            TELEMETRY_SDK_LANGUAGE: "python",
            TELEMETRY_SDK_NAME: "djtrace",
            TELEMETRY_SDK_VERSION: __version__,
            SERVICE_NAME: "unknown_service",
        }
        detectors = os.environ.get(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS, "")
        for name in (d.strip() for d in detectors.split(",")):
            if name in _DETECTORS:
                base.update(_DETECTORS[name]())
        env = os.environ.get(OTEL_RESOURCE_ATTRIBUTES, "")
        if env:
            base.update(parse_resource_attributes(env))
        service = os.environ.get(OTEL_SERVICE_NAME, "").strip()
        if service:
            base[SERVICE_NAME] = service
        merged = dict(base)
        merged.update(_clean(attributes))
        return Resource(merged, schema_url)

    @staticmethod
    def get_empty() -> Resource:
        return _EMPTY_RESOURCE

    @property
    def attributes(self) -> Mapping[str, Any]:
        return dict(self._attributes)

    @property
    def schema_url(self) -> str:
        return self._schema_url

    def merge(self, other: Resource) -> Resource:
        """Attributes of `other` win; schema urls must agree when both are set."""
        merged = dict(self._attributes)
        merged.update(other._attributes)
        if not self._schema_url:
            schema_url = other._schema_url
        elif not other._schema_url or other._schema_url == self._schema_url:
            schema_url = self._schema_url
        else:
            return self
        return Resource(merged, schema_url)

    def to_json(self, indent: int | None = 4) -> str:
        import json

        return json.dumps(
            {"attributes": self._attributes, "schema_url": self._schema_url}, indent=indent
        )

    def _to_native(self):
        if self._native is None:
            self._native = _native.make_resource(self._attributes, self._schema_url)
        return self._native

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resource):
            return NotImplemented
        return self._attributes == other._attributes and self._schema_url == other._schema_url

    def __hash__(self) -> int:
        items = tuple(sorted(self._attributes.items(), key=lambda kv: kv[0]))
        return hash((items, self._schema_url))

    def __repr__(self) -> str:
        return f"Resource({self._attributes!r}, schema_url={self._schema_url!r})"


_EMPTY_RESOURCE = Resource({})
