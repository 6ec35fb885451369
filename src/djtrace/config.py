"""One configuration, built from defaults, the DJTRACE Django setting, the environment and
explicit keyword arguments (in rising priority), validated once.

Every bad value raises ConfigError naming the setting or variable and the value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A djtrace or OpenTelemetry setting has a bad value; the message names both."""


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_EXPORTERS = ("otlp", "console", "file", "none")
_PROTOCOLS = ("grpc", "http/protobuf")
_COMPRESSIONS = ("none", "gzip")
_PROPAGATORS = ("tracecontext", "baggage", "none")


# Keys of the DJTRACE setting that integrations define and validate themselves (each
# integration registers its keys with register_setting_keys at import).
_INTEGRATION_KEYS: set[str] = set()


def register_setting_keys(*keys: str) -> None:
    """Declares DJTRACE keys owned by an integration, so that from_sources accepts them."""
    _INTEGRATION_KEYS.update(keys)


@dataclasses.dataclass
class Config:
    """Resolved settings. Field names are the keys of DJTRACE = {...} and of configure()."""

    disabled: bool = False
    service_name: str | None = None
    resource_attributes: dict = dataclasses.field(default_factory=dict)
    sampler: str = "parentbased_always_on"
    sampler_arg: str = ""
    exporters: tuple = ("otlp",)
    otlp_protocol: str = "http/protobuf"
    otlp_endpoint: str | None = None  # None: the protocol's default
    otlp_headers: dict = dataclasses.field(default_factory=dict)
    otlp_compression: str = "none"
    otlp_timeout_ms: int = 10000
    otlp_certificate: str | None = None
    otlp_client_key: str | None = None
    otlp_client_certificate: str | None = None
    otlp_insecure: bool | None = None
    bsp_max_queue_size: int = 2048
    bsp_schedule_delay_ms: int = 5000
    bsp_max_export_batch_size: int = 512
    bsp_export_timeout_ms: int = 30000
    file_path: str = "djtrace-traces.jsonl"
    console_verbose: bool = False
    propagators: tuple = ("tracecontext", "baggage")
    pii: Any = "default"  # a profile name or a dict: see djtrace.pii

    def resolved_endpoint(self) -> str:
        """The OTLP traces endpoint, with the protocol's default and path."""
        if self.otlp_endpoint:
            return self.otlp_endpoint
        if self.otlp_protocol == "grpc":
            return "http://localhost:4317"
        return "http://localhost:4318/v1/traces"


# (field, environment variables in priority order, parser)
def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _parse_int(name: str, raw: Any, minimum: int = 0) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _parse_choice(name: str, raw: str, choices: tuple) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
    return value


def _parse_list(name: str, raw: Any, choices: tuple) -> tuple:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    out = []
    for item in items:
        item = str(item).strip().lower()
        if not item:
            continue
        if item not in choices:
            raise ConfigError(f"{name} must list values among {', '.join(choices)}; got {raw!r}")
        if item not in out:
            out.append(item)
    return tuple(out)


def parse_headers(name: str, raw: Any) -> dict:
    """W3C-baggage-like `k1=v1,k2=v2` (percent-encoded), or a mapping / list of pairs."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        pairs = list(raw)
    else:
        pairs = []
        for item in str(raw).split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ConfigError(
                    f"{name} must be key=value pairs separated by commas; got {raw!r}")
            key, value = item.split("=", 1)
            pairs.append((unquote(key.strip()), unquote(value.strip())))
    out = {}
    for key, value in pairs:
        key = str(key).strip().lower()
        if not key or any(c in key for c in " \t\r\n:") or any(c in str(value) for c in "\r\n"):
            raise ConfigError(f"{name} has an invalid header {key!r}")
        out[key] = str(value)
    return out


def check_endpoint(name: str, raw: str) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
    return value


def _parse_ratio(name: str, raw: str) -> str:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a ratio between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a ratio between 0 and 1, got {raw!r}")
    return raw.strip()


def from_sources(
    settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Builds and validates the configuration from the three sources (rising priority)."""
    env = os.environ if environ is None else environ
    cfg = Config()
    fields = {f.name for f in dataclasses.fields(Config)}

    def apply(source_name: str, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if key in _INTEGRATION_KEYS:
                continue
            if key not in fields:
                known = ", ".join(sorted(fields | _INTEGRATION_KEYS))
                raise ConfigError(f"{source_name}: unknown setting {key!r} (known: {known})")
            _set(cfg, f"{source_name}[{key!r}]", key, value)

    apply("DJTRACE", settings or {})

    def env_value(*names: str) -> tuple[str, str] | None:
        for n in names:
            raw = env.get(n)
            if raw is not None and raw.strip() != "":
                return n, raw
        return None

    mapping = [
        ("disabled", ("OTEL_SDK_DISABLED",)),
        ("service_name", ("OTEL_SERVICE_NAME",)),
        ("sampler", ("OTEL_TRACES_SAMPLER",)),
        ("sampler_arg", ("OTEL_TRACES_SAMPLER_ARG",)),
        ("exporters", ("OTEL_TRACES_EXPORTER",)),
        ("otlp_protocol", ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")),
        ("otlp_headers", ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")),
        ("otlp_compression",
         ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")),
        ("otlp_timeout_ms", ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")),
        ("otlp_certificate",
         ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")),
        ("otlp_client_key",
         ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY")),
        ("otlp_client_certificate",
         ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
          "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")),
        ("otlp_insecure", ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")),
        ("bsp_max_queue_size", ("OTEL_BSP_MAX_QUEUE_SIZE",)),
        ("bsp_schedule_delay_ms", ("OTEL_BSP_SCHEDULE_DELAY",)),
        ("bsp_max_export_batch_size", ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",)),
        ("bsp_export_timeout_ms", ("OTEL_BSP_EXPORT_TIMEOUT",)),
        ("propagators", ("OTEL_PROPAGATORS",)),
        ("file_path", ("DJTRACE_FILE_PATH",)),
    ]
    for field, names in mapping:
        found = env_value(*names)
        if found:
            _set(cfg, found[0], field, found[1])
    # The signal-specific endpoint is used as is; the generic one gets /v1/traces appended for
    # http/protobuf, as the specification says.
    traces_ep = env_value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    generic_ep = env_value("OTEL_EXPORTER_OTLP_ENDPOINT")
    if traces_ep:
        cfg.otlp_endpoint = check_endpoint(*traces_ep)
    elif generic_ep:
        value = check_endpoint(*generic_ep)
        if cfg.otlp_protocol != "grpc":
            value = value.rstrip("/") + "/v1/traces"
        cfg.otlp_endpoint = value
    found = env_value("OTEL_RESOURCE_ATTRIBUTES")
    if found:
        from djtrace.sdk.resources import ResourceError, parse_resource_attributes

        try:
            cfg.resource_attributes = {**parse_resource_attributes(found[1]),
                                       **cfg.resource_attributes}
        except ResourceError as exc:
            raise ConfigError(str(exc)) from None

    apply("configure()", overrides or {})
    _validate(cfg)
    return cfg


def _set(cfg: Config, name: str, field: str, value: Any) -> None:
    if field in ("disabled", "console_verbose"):
        value = value if isinstance(value, bool) else _parse_bool(name, str(value))
    elif field == "otlp_insecure":
        value = None if value is None else (
            value if isinstance(value, bool) else _parse_bool(name, str(value)))
    elif field in ("bsp_max_queue_size", "bsp_max_export_batch_size"):
        value = _parse_int(name, value, 1)
    elif field in ("bsp_schedule_delay_ms", "bsp_export_timeout_ms", "otlp_timeout_ms"):
        value = _parse_int(name, value, 0)
    elif field == "sampler":
        value = _parse_choice(name, str(value), _SAMPLERS)
    elif field == "sampler_arg":
        value = str(value)
    elif field == "exporters":
        value = _parse_list(name, value, _EXPORTERS)
    elif field == "otlp_protocol":
        value = _parse_choice(name, str(value), _PROTOCOLS)
    elif field == "otlp_compression":
        value = _parse_choice(name, str(value), _COMPRESSIONS)
    elif field == "otlp_headers":
        value = parse_headers(name, value)
    elif field == "otlp_endpoint":
        value = None if value is None else check_endpoint(name, str(value))
    elif field == "propagators":
        value = _parse_list(name, value, _PROPAGATORS)
    elif field == "pii":
        if not isinstance(value, (str, Mapping)):
            raise ConfigError(f"{name} must be a profile name or a dict, got {value!r}")
    elif field == "resource_attributes":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        value = dict(value)
    elif field in ("service_name", "file_path", "otlp_certificate", "otlp_client_key",
                   "otlp_client_certificate"):
        value = None if value is None else str(value)
    setattr(cfg, field, value)


def _validate(cfg: Config) -> None:
    if cfg.sampler in ("traceidratio", "parentbased_traceidratio") and cfg.sampler_arg:
        _parse_ratio("OTEL_TRACES_SAMPLER_ARG", cfg.sampler_arg)
    if cfg.bsp_max_export_batch_size > cfg.bsp_max_queue_size:
        raise ConfigError(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not exceed OTEL_BSP_MAX_QUEUE_SIZE; got "
            f"{cfg.bsp_max_export_batch_size} > {cfg.bsp_max_queue_size}"
        )
    if "none" in cfg.exporters:
        cfg.exporters = ()
    if "none" in cfg.propagators:
        cfg.propagators = ()
    for path_field in ("otlp_certificate", "otlp_client_key", "otlp_client_certificate"):
        path = getattr(cfg, path_field)
        if path and "otlp" in cfg.exporters and not os.path.isfile(path):
            raise ConfigError(f"{path_field}: no such file {path!r}")
