"""PII and secret redaction: what leaves the process is clean, whichever code made the span.

Every span is redacted natively (native/pii) on the export worker thread, before it is encoded:
djtrace's own spans, official instrumentations' spans and user spans alike. Configure with the
DJTRACE setting's "pii" key (or `djtrace.configure(pii=...)`, or TracerProvider(redaction=...)):

    DJTRACE = {"pii": "gdpr"}                       # a profile: "default" (the default),
                                                    # "gdpr" or "off"
    DJTRACE = {"pii": {
        "profile": "gdpr",
        "detectors": {"email": "partial",           # per detector: False, True, or a style:
                      "ipv4": False},               #   "full" -> [REDACTED]
                                                    #   "partial" -> al***@example.com
                                                    #   "pseudonymise" -> pseudo:3f2a9c...
        "hmac_key": "...",                          # for pseudonymise (or DJTRACE_PII_KEY)
        "allow_keys": ["app.order_ref"],            # globs exempt from value detectors
        "deny_keys": [{"name": "pin", "key": "*.pin", "style": "full"}],
        "value_patterns": [{"name": "order_secret", "pattern": "ORD-[0-9]{4}-SECRET",
                            "style": "full"}],
    }}

Key globs: `*` matches any run of characters, `?` one character, case-insensitive. Value
patterns are a linear-time regular-expression subset (literals, `.`, classes `[a-z0-9]`,
`\\d \\w \\s`, `* + ? {m,n}`, `|`, groups, `^ $`): no backtracking, so no pattern can make
export slow. Detectors: email, phone, ssn, credit_card (Luhn-checked), iban (mod-97 checked),
jwt, bearer_token, basic_auth, aws_access_key, aws_secret_key, github_token, stripe_key,
slack_token, private_key, ipv4, ipv6, url_credentials, sensitive_param; key rules:
sensitive_key (authorization, cookie, set-cookie, x-api-key, *password*, *secret*, *token*...),
client_address and enduser (pseudonymised under gdpr when a key is set).

Environment: DJTRACE_PII_PROFILE overrides the profile; DJTRACE_PII_KEY supplies hmac_key.
Counters of values redacted per rule (never the values) are in `djtrace.stats()["pii"]`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from djtrace import _native
from djtrace.config import ConfigError

PROFILES = ("off", "default", "gdpr")
STYLES = ("full", "partial", "pseudonymise")


def _rules(setting: str, value: Any, value_key: str) -> list:
    out = []
    for i, rule in enumerate(value or ()):
        if isinstance(rule, Mapping):
            try:
                out.append((str(rule["name"]), str(rule[value_key]),
                            str(rule.get("style", "full"))))
            except KeyError as exc:
                raise ConfigError(
                    f"{setting}[{i}] needs a {exc.args[0]!r} entry: {rule!r}") from None
        elif isinstance(rule, (list, tuple)) and len(rule) in (2, 3):
            out.append((str(rule[0]), str(rule[1]), str(rule[2]) if len(rule) == 3 else "full"))
        else:
            raise ConfigError(f"{setting}[{i}] must be a dict with name, {value_key}, style; "
                              f"got {rule!r}")
    return out


def build_redactor(value: Any = None, environ: Mapping[str, str] | None = None):
    """A native Redactor from the "pii" setting (a profile name or a dict), or None when
    nothing is to be redacted. Raises ConfigError naming the setting and the bad value."""
    env = os.environ if environ is None else environ
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"profile": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"DJTRACE['pii'] must be a profile name or a dict, got {value!r}")
    cfg: dict = {}
    profile = str(value.get("profile", "default")).strip().lower()
    env_profile = env.get("DJTRACE_PII_PROFILE", "").strip().lower()
    source = "DJTRACE['pii']['profile']"
    if env_profile:
        profile, source = env_profile, "DJTRACE_PII_PROFILE"
    if profile not in PROFILES:
        raise ConfigError(f"{source} must be one of {', '.join(PROFILES)}; got {profile!r}")
    cfg["profile"] = profile
    unknown = set(value) - {"profile", "detectors", "hmac_key", "pseudonym_length",
                            "builtin_allow_keys", "allow_keys", "deny_keys", "value_patterns"}
    if unknown:
        raise ConfigError(f"DJTRACE['pii']: unknown keys {sorted(unknown)}")
    detectors = value.get("detectors") or {}
    if not isinstance(detectors, Mapping):
        raise ConfigError(f"DJTRACE['pii']['detectors'] must be a dict, got {detectors!r}")
    for name, setting in detectors.items():
        if not isinstance(setting, bool) and setting not in STYLES:
            raise ConfigError(f"DJTRACE['pii']['detectors'][{name!r}] must be True, False or one "
                              f"of {', '.join(STYLES)}; got {setting!r}")
    cfg["detectors"] = dict(detectors)
    key = value.get("hmac_key") or env.get("DJTRACE_PII_KEY", "")
    if key:
        cfg["hmac_key"] = str(key)
    if "pseudonym_length" in value:
        cfg["pseudonym_length"] = int(value["pseudonym_length"])
    if "builtin_allow_keys" in value:
        cfg["builtin_allow_keys"] = bool(value["builtin_allow_keys"])
    cfg["allow_keys"] = [str(k) for k in value.get("allow_keys") or ()]
    cfg["deny_keys"] = _rules("DJTRACE['pii']['deny_keys']", value.get("deny_keys"), "key")
    cfg["value_patterns"] = _rules("DJTRACE['pii']['value_patterns']",
                                   value.get("value_patterns"), "pattern")
    if (profile == "off" and not cfg["detectors"] and not cfg["deny_keys"]
            and not cfg["value_patterns"]):
        return None
    try:
        return _native.Redactor.build(cfg)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"DJTRACE['pii']: {exc}") from None


_active = None


def set_active(redactor: Any) -> None:
    """The redactor integrations use for values they redact before recording (URLs, headers,
    command options); set by the configured tracer provider."""
    global _active
    _active = redactor


def redact(key: str, value: str) -> str:
    """`value` as the active redactor exports it under attribute `key` (unchanged if none)."""
    r = _active
    return r.redact(key, value) if r is not None else value


def counters() -> dict:
    r = _active
    return dict(r.counters()) if r is not None else {}
