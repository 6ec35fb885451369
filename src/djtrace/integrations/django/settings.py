"""Settings of the Django integration: the keys it owns in `DJTRACE = {...}`, the OTEL_*
variables it reads, their validation, and a cached view of both.

Keys of the DJTRACE dict owned by the Django integration (the SDK's own keys, such as
`service_name` or `exporters`, are documented in djtrace.config.Config):

=========================  ==============  ====================================================
key                        default         meaning
=========================  ==============  ====================================================
excluded_urls              ""              Regular expressions, a comma-separated string or a
                                           list. A request whose URL (scheme://host/path, no
                                           query) matches one with re.search gets no span and
                                           nothing below it is recorded. Replaced by
                                           OTEL_PYTHON_DJANGO_EXCLUDED_URLS, or failing that
                                           OTEL_PYTHON_EXCLUDED_URLS, when set.
middleware_spans           True            One INTERNAL span per middleware (named by its dotted
                                           path as in MIDDLEWARE), plus one per process_view /
                                           process_template_response / process_exception hook.
view_spans                 True            One span for the view: function name, `Class.method`
                                           or `ViewSet.action`.
drf_spans                  True            Django REST framework: authentication, permission,
                                           throttle checks and serializer is_valid / save /
                                           to_representation spans.
template_spans             True            One span per rendered template (`render name.html`),
                                           included and extended ones too; Jinja2 as well.
cache_spans                True            One span per cache call (`cache.get`, ...).
cache_keys                 False           Export the cache keys (redacted) on cache spans.
cache_repeat_threshold     5               Flag on the local root span a cache key read this
                                           many times in one request or command (0: off).
signal_spans               False           One span per signal receiver call.
signal_min_duration_ms     0               With signal_spans, only receivers that took at least
                                           this long get a span (recorded after the fact).
command_spans              True            A root span `manage.py <name>` per management command.
excluded_commands          see below       Commands that get no span (they serve or wait):
                                           runserver, runserver_plus, testserver, shell,
                                           shell_plus, dbshell, test, celery, runworker, daphne,
                                           uvicorn, gunicorn. Requests they serve are traced.
capture_enduser            True            enduser.id (the user's primary key) on the request
                                           span once authentication has run; subject to the PII
                                           policy of the export path.
auth_events                True            Login, logout and failed-login signals as events on
                                           the request span (never the credentials).
http_client_spans          True            CLIENT spans for outgoing requests / urllib3 / httpx.
=========================  ==============  ====================================================

Environment variables (read when settings are loaded, see `reload()`):

- OTEL_PYTHON_DJANGO_INSTRUMENT=false: the Django integration installs nothing.
- OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: comma-separated names (django, requests, urllib3,
  httpx) left uninstrumented.
- OTEL_PYTHON_DJANGO_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS: as excluded_urls.
- OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST / _SERVER_RESPONSE: header names or
  regular expressions (comma-separated, matched whole and case-insensitively) captured as
  `http.request.header.<name>` / `http.response.header.<name>` (name in lower case, '-' as
  '_', value a list of strings), as the official instrumentation does.
- OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS: header regular expressions whose
  captured value is replaced by `[REDACTED]`.
- OTEL_SEMCONV_STABILITY_OPT_IN: `http/dup` emits the old HTTP attribute names (http.method,
  http.url, http.status_code, ...) next to the stable ones; anything else: stable names only.
- OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS: keep unknown HTTP methods instead of
  reporting them as `_OTHER`.

Settings are read once and cached; Django's `setting_changed` signal (override_settings in
tests) clears the cache for DJTRACE, DEBUG and SECURE_PROXY_SSL_HEADER.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from djtrace.config import register_setting_keys

logger = logging.getLogger("djtrace")

DEFAULT_EXCLUDED_COMMANDS = (
    "runserver",
    "runserver_plus",
    "testserver",
    "shell",
    "shell_plus",
    "dbshell",
    "test",
    "celery",
    "runworker",
    "daphne",
    "uvicorn",
    "gunicorn",
)

DEFAULTS: dict[str, Any] = {
    "excluded_urls": "",
    "middleware_spans": True,
    "view_spans": True,
    "drf_spans": True,
    "template_spans": True,
    "cache_spans": True,
    "cache_keys": False,
    "cache_repeat_threshold": 5,
    "signal_spans": False,
    "signal_min_duration_ms": 0,
    "command_spans": True,
    "excluded_commands": DEFAULT_EXCLUDED_COMMANDS,
    "capture_enduser": True,
    "auth_events": True,
    "http_client_spans": True,
}

_BOOL_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, bool))

register_setting_keys(*DEFAULTS)

# Modules whose import registers the DJTRACE keys of other integrations (cheap imports: they
# do not import the library they instrument).
_KEY_MODULES = ("djtrace.integrations.django.db", "djtrace.integrations.celery._state",
                "djtrace.integrations.redis", "djtrace.integrations.logging", "djtrace.pii")
_keys_loaded = False


def register_known_integration_keys() -> None:
    """Imports the integrations' settings so that every valid DJTRACE key is known."""
    global _keys_loaded
    if _keys_loaded:
        return
    _keys_loaded = True
    import importlib

    for name in _KEY_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - absent or broken: its keys stay unknown
            pass


def core_settings(raw: Any) -> dict:
    """The keys of `raw` (the DJTRACE setting) that djtrace.configure() itself reads."""
    import dataclasses

    from djtrace import config

    if not isinstance(raw, Mapping):
        return {}
    fields = {f.name for f in dataclasses.fields(config.Config)}
    return {k: v for k, v in raw.items() if k in fields}


class SettingProblem:
    """A bad value found while loading settings; checks.py turns it into a Django check."""

    __slots__ = ("id", "key", "message")

    def __init__(self, id: str, key: str, message: str) -> None:  # noqa: A002
        self.id = id
        self.key = key
        self.message = message

    def __repr__(self) -> str:
        return f"SettingProblem({self.id}, {self.key!r}, {self.message!r})"


# Check ids (stable; documented in checks.py).
E_NOT_A_DICT = "djtrace.E001"
E_UNKNOWN_KEY = "djtrace.E002"
E_BAD_VALUE = "djtrace.E003"
E_BAD_REGEX = "djtrace.E004"
E_CORE = "djtrace.E005"


class DjangoSettings:
    """The resolved settings. Attribute names are the DJTRACE keys, plus what the environment
    adds (compiled patterns and switches). Never changed once published: a reload makes a new
    object, and the native hooks keep what they read from each object (`request_flags`, the
    template and cache switches) for as long as it is the current one."""

    __slots__ = (
        *DEFAULTS,
        "instrument",
        "disabled_instrumentations",
        "excluded_re",
        "capture_request_headers",
        "capture_response_headers",
        "sanitize_headers",
        "semconv_old",
        "capture_all_methods",
        "problems",
        "request_flags",
        "plain_scheme",
    )

    def __init__(self) -> None:
        for key, value in DEFAULTS.items():
            setattr(self, key, value)
        self.instrument = True
        self.disabled_instrumentations: frozenset = frozenset()
        self.excluded_re: re.Pattern | None = None
        self.capture_request_headers: re.Pattern | None = None
        self.capture_response_headers: re.Pattern | None = None
        self.sanitize_headers: re.Pattern | None = None
        self.semconv_old = False
        self.capture_all_methods = False
        self.problems: list[SettingProblem] = []
        # Django's SECURE_PROXY_SSL_HEADER is unset: request.scheme is the WSGI environ's.
        self.plain_scheme = False
        self.request_flags = request_flags(self)


def request_flags(s: DjangoSettings) -> int:
    """What the native request lifecycle (native/python/request_bindings.cc) reads of the
    settings, as one int: it runs for every request."""
    return (bool(s.capture_all_methods) | bool(s.semconv_old) << 1
            | bool(s.middleware_spans) << 2 | bool(s.view_spans) << 3 | bool(s.drf_spans) << 4
            | bool(s.capture_enduser) << 5 | (s.capture_request_headers is not None) << 6
            | (s.capture_response_headers is not None) << 7 | (s.excluded_re is not None) << 8
            | bool(s.plain_scheme) << 9)


def _split_patterns(raw: Any) -> list[str] | None:
    if isinstance(raw, str):
        return [p.strip() for p in raw.split(",") if p.strip()]
    if isinstance(raw, (list, tuple)) and all(isinstance(p, str) for p in raw):
        return [p.strip() for p in raw if p.strip()]
    return None


def _compile(patterns: list[str], flags: int = 0) -> re.Pattern | None:
    if not patterns:
        return None
    return re.compile("|".join(patterns), flags)


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in ("false", "0", "no", "off")


def load(raw_settings: Any, environ: Mapping[str, str] | None = None,
         core_known: set[str] | None = None) -> DjangoSettings:
    """Resolves `raw_settings` (the DJTRACE setting, or None) and the environment.

    Bad values fall back to their default and are listed in `.problems` (never raised: a typo
    in a tracing setting must not take the site down; the system checks report them)."""
    env = os.environ if environ is None else environ
    s = DjangoSettings()
    problems = s.problems
    if raw_settings is None:
        raw_settings = {}
    if not isinstance(raw_settings, Mapping):
        problems.append(SettingProblem(
            E_NOT_A_DICT, "DJTRACE", f"DJTRACE must be a dict, got {type(raw_settings).__name__}"))
        raw_settings = {}

    if core_known is None:
        import dataclasses

        from djtrace import config

        register_known_integration_keys()

        core_known = {f.name for f in dataclasses.fields(config.Config)} | set(
            config._INTEGRATION_KEYS)  # noqa: SLF001 - the registry of integration keys
    for key in raw_settings:
        if key not in DEFAULTS and key not in core_known:
            all_keys = sorted(set(core_known) | set(DEFAULTS))
            close = difflib.get_close_matches(str(key), all_keys, n=1)
            hint = (f"did you mean {close[0]!r}?" if close
                    else f"known: {', '.join(all_keys)}")
            problems.append(SettingProblem(
                E_UNKNOWN_KEY, str(key), f"DJTRACE[{key!r}] is not a known setting ({hint})"))

    for key in DEFAULTS:
        if key not in raw_settings:
            continue
        value = raw_settings[key]
        name = f"DJTRACE[{key!r}]"
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                problems.append(SettingProblem(E_BAD_VALUE, key,
                                               f"{name} must be True or False, got {value!r}"))
                continue
        elif key == "cache_repeat_threshold":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(SettingProblem(
                    E_BAD_VALUE, key, f"{name} must be an integer >= 0, got {value!r}"))
                continue
        elif key == "signal_min_duration_ms":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                problems.append(SettingProblem(
                    E_BAD_VALUE, key,
                    f"{name} must be a number of milliseconds >= 0, got {value!r}"))
                continue
        elif key == "excluded_commands":
            if (isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset))
                    or not all(isinstance(c, str) for c in value)):
                problems.append(SettingProblem(
                    E_BAD_VALUE, key, f"{name} must be a list of command names, got {value!r}"))
                continue
            value = tuple(value)
        elif key == "excluded_urls":
            if _split_patterns(value) is None:
                problems.append(SettingProblem(
                    E_BAD_VALUE, key,
                    f"{name} must be a comma-separated string or a list of regular expressions, "
                    f"got {value!r}"))
                continue
        setattr(s, key, value)

    # Excluded URLs: the environment, when set, replaces the setting (rising priority).
    source = "DJTRACE['excluded_urls']"
    patterns = _split_patterns(s.excluded_urls) or []
    for var in ("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        raw = env.get(var)
        if raw is not None and raw.strip():
            source, patterns = var, _split_patterns(raw) or []
            break
    try:
        s.excluded_re = _compile(patterns)
    except re.error as exc:
        problems.append(SettingProblem(E_BAD_REGEX, "excluded_urls",
                                       f"{source} has an invalid regular expression: {exc}"))
        s.excluded_re = None

    for attr, var, flags in (
        ("capture_request_headers", "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
         re.IGNORECASE),
        ("capture_response_headers", "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
         re.IGNORECASE),
        ("sanitize_headers", "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
         re.IGNORECASE),
    ):
        try:
            setattr(s, attr, _compile(_split_patterns(env.get(var, "")) or [], flags))
        except re.error as exc:
            problems.append(SettingProblem(E_BAD_REGEX, var,
                                           f"{var} has an invalid regular expression: {exc}"))

    s.instrument = _env_bool(env, "OTEL_PYTHON_DJANGO_INSTRUMENT", True)
    s.disabled_instrumentations = frozenset(
        p.strip().lower() for p in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
        if p.strip())
    if "django" in s.disabled_instrumentations:
        s.instrument = False
    opt_in = {p.strip().lower() for p in env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    s.semconv_old = "http/dup" in opt_in
    s.capture_all_methods = bool(env.get("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS"))
    s.request_flags = request_flags(s)
    return s


_current: DjangoSettings | None = None
_listeners: list[Callable[[DjangoSettings], None]] = []
_logged: set[str] = set()


def get() -> DjangoSettings:
    """The settings in force (cached until DJTRACE, DEBUG or SECURE_PROXY_SSL_HEADER changes, or
    `reload()`)."""
    s = _current
    return s if s is not None else _load_from_django()


def _load_from_django() -> DjangoSettings:
    global _current
    try:
        from django.conf import settings as dj

        raw = getattr(dj, "DJTRACE", None) if dj.configured else None
        plain_scheme = dj.configured and not getattr(dj, "SECURE_PROXY_SSL_HEADER", None)
    except Exception:  # noqa: BLE001 - Django absent or misconfigured: defaults
        raw = None
        plain_scheme = False
    s = load(raw)
    s.plain_scheme = plain_scheme
    s.request_flags = request_flags(s)
    for p in s.problems:
        if p.message not in _logged:
            _logged.add(p.message)
            logger.error("djtrace: %s (%s); using the default", p.message, p.id)
    _current = s
    for listener in list(_listeners):
        try:
            listener(s)
        except Exception:  # noqa: BLE001
            from djtrace.sdk.trace import _report_internal_error

            _report_internal_error("django settings listener")
    return s


def reload() -> DjangoSettings:
    """Reads DJTRACE and the environment again (tests that change environment variables)."""
    global _current
    _current = None
    return _load_from_django()


def on_change(listener: Callable[[DjangoSettings], None]) -> None:
    """Calls `listener(settings)` each time the settings are loaded anew."""
    if listener not in _listeners:
        _listeners.append(listener)


def _setting_changed(setting: str = "", **kwargs: Any) -> None:
    if setting in ("DJTRACE", "DEBUG", "SECURE_PROXY_SSL_HEADER"):
        reload()


def connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_setting_changed, dispatch_uid="djtrace.settings")
