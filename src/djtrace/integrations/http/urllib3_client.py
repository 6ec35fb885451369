"""urllib3: a CLIENT span per HTTPConnectionPool.urlopen (retries it performs itself are part
of the span), with the trace context injected into a copy of the request headers. Calls made
through requests are recorded by the requests integration instead."""

from __future__ import annotations

from typing import Any

from djtrace.integrations.http import _common
from djtrace.sdk.trace import _report_internal_error

_originals: dict[str, Any] = {}


def _full_url(pool: Any, url: str) -> str:
    if "://" in url:
        return url
    scheme = getattr(pool, "scheme", "http") or "http"
    host = getattr(pool, "host", "") or ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = getattr(pool, "port", None)
    default = 443 if scheme == "https" else 80
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{url}"


def install() -> bool:
    """Idempotent; False without urllib3 or when an official instrumentation wraps urlopen."""
    if _originals:
        return True
    try:
        from urllib3 import connectionpool
    except ImportError:
        return False
    pool_cls = connectionpool.HTTPConnectionPool
    orig = pool_cls.urlopen
    if _common.applied_by_official(orig):
        return False
    _originals["urlopen"] = orig

    def urlopen(self, method, url, *args, **kwargs):
        if not _common.should_record():
            return orig(self, method, url, *args, **kwargs)
        try:
            call = _common.ClientCall(method, _full_url(self, url))
        except Exception:  # noqa: BLE001
            _report_internal_error("urllib3 span start")
            return orig(self, method, url, *args, **kwargs)
        try:
            if len(args) >= 2:  # urlopen(method, url, body, headers, ...)
                headers = dict(args[1] or {})
                call.inject(headers)
                args = (args[0], headers, *args[2:])
            else:
                headers = dict(kwargs.get("headers") or {})
                call.inject(headers)
                kwargs["headers"] = headers
        except Exception:  # noqa: BLE001
            _report_internal_error("urllib3 inject")
        try:
            response = orig(self, method, url, *args, **kwargs)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        call.finish(getattr(response, "status", None))
        return response

    urlopen.__wrapped__ = orig
    urlopen._djtrace_http = True
    pool_cls.urlopen = urlopen
    return True


def uninstall() -> None:
    if not _originals:
        return
    from urllib3 import connectionpool

    connectionpool.HTTPConnectionPool.urlopen = _originals.pop("urlopen")
