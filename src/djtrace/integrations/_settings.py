"""The DJTRACE keys owned by the Celery, Redis and logging integrations.

Each key is read from, in rising priority: its default, the `DJTRACE = {...}` Django setting
(when Django is configured), the environment variable `DJTRACE_<KEY>` (upper case), and the
keyword arguments of `djtrace.celery.instrument(app, **settings)` or a `djtrace` dict in the
Celery app's configuration. Values are parsed and validated once, when an integration is
installed (or `refresh()` is called); a bad value raises djtrace.ConfigError naming the key and
the value. The hot paths read plain module globals set from here, never this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from djtrace.config import ConfigError, register_setting_keys

_specs: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {}
_overrides: dict[str, Any] = {}


def parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_non_negative_int(name: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be a non-negative integer, got {raw!r}")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {raw!r}")
    return value


def define(key: str, default: Any, parser: Callable[[str, Any], Any]) -> None:
    """Declares a key (also to djtrace.config, so the DJTRACE setting accepts it)."""
    register_setting_keys(key)
    _specs[key] = (default, parser)


def set_overrides(values: dict[str, Any]) -> None:
    """Explicit values (instrument() arguments, the Celery app's `djtrace` dict); validated."""
    for key, raw in values.items():
        if key not in _specs:
            known = ", ".join(sorted(_specs))
            raise ConfigError(f"djtrace: unknown integration setting {key!r} (known: {known})")
        _specs[key][1](key, raw)
    _overrides.update(values)


def _django_settings() -> dict:
    if "django.conf" not in sys.modules:  # never import Django into a process without it
        return {}
    try:
        from django.conf import settings

        if not settings.configured:
            return {}
        value = getattr(settings, "DJTRACE", None) or {}
        return value if isinstance(value, dict) else {}
    except Exception:  # noqa: BLE001 - settings that fail to load are Django's to report
        return {}


def value(key: str) -> Any:
    """The validated value of `key` from the sources above."""
    default, parser = _specs[key]
    if key in _overrides:
        return parser(key, _overrides[key])
    env_name = "DJTRACE_" + key.upper()
    raw = os.environ.get(env_name)
    if raw is not None and raw.strip() != "":
        return parser(env_name, raw)
    django = _django_settings()
    if key in django:
        return parser(f"DJTRACE[{key!r}]", django[key])
    return default
