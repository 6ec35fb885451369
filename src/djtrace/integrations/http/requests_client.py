"""requests: a CLIENT span per Session.send (so per redirect hop), with the trace context
injected into the prepared request's headers."""

from __future__ import annotations

from typing import Any

from djtrace.integrations.http import _common
from djtrace.sdk.trace import _report_internal_error

_originals: dict[str, Any] = {}


def install() -> bool:
    """Idempotent; False without requests or when opentelemetry-instrumentation-requests
    already wraps Session.send."""
    if _originals:
        return True
    try:
        from requests import sessions
    except ImportError:
        return False
    orig = sessions.Session.send
    if _common.applied_by_official(orig):
        return False
    _originals["send"] = orig

    def send(self, request, **kwargs):
        if not _common.should_record():
            return orig(self, request, **kwargs)
        try:
            call = _common.ClientCall(request.method, request.url)
        except Exception:  # noqa: BLE001
            _report_internal_error("requests span start")
            return orig(self, request, **kwargs)
        try:
            if request.headers is None:
                from requests.structures import CaseInsensitiveDict

                request.headers = CaseInsensitiveDict()
            call.inject(request.headers)
        except Exception:  # noqa: BLE001
            _report_internal_error("requests inject")
        try:
            response = orig(self, request, **kwargs)
        except BaseException as exc:
            call.finish(getattr(getattr(exc, "response", None), "status_code", None), exc)
            raise
        call.finish(response.status_code)
        return response

    send.__wrapped__ = orig
    send._djtrace_http = True
    sessions.Session.send = send
    return True


def uninstall() -> None:
    if not _originals:
        return
    from requests import sessions

    sessions.Session.send = _originals.pop("send")
