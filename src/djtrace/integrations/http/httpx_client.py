"""httpx: a CLIENT span per request the default transports send (HTTPTransport for Client,
AsyncHTTPTransport for AsyncClient; so per redirect hop), with the trace context injected into
the request's headers."""

from __future__ import annotations

from typing import Any

from djtrace.integrations.http import _common
from djtrace.sdk.trace import _report_internal_error

_originals: dict[str, Any] = {}


def _start(request: Any) -> Any:
    try:
        call = _common.ClientCall(request.method, str(request.url))
    except Exception:  # noqa: BLE001
        _report_internal_error("httpx span start")
        return None
    try:
        call.inject(request.headers)
    except Exception:  # noqa: BLE001
        _report_internal_error("httpx inject")
    return call


def install() -> bool:
    """Idempotent; False without httpx or when an official instrumentation wraps it."""
    if _originals:
        return True
    try:
        import httpx
    except ImportError:
        return False
    sync_orig = httpx.HTTPTransport.handle_request
    async_orig = httpx.AsyncHTTPTransport.handle_async_request
    if _common.applied_by_official(sync_orig) or _common.applied_by_official(async_orig):
        return False
    _originals.update(sync=sync_orig, async_=async_orig)

    def handle_request(self, request):
        call = _start(request) if _common.should_record() else None
        if call is None:
            return sync_orig(self, request)
        try:
            response = sync_orig(self, request)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        call.finish(response.status_code)
        return response

    async def handle_async_request(self, request):
        call = _start(request) if _common.should_record() else None
        if call is None:
            return await async_orig(self, request)
        try:
            response = await async_orig(self, request)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        call.finish(response.status_code)
        return response

    handle_request.__wrapped__ = sync_orig
    handle_async_request.__wrapped__ = async_orig
    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request
    return True


def uninstall() -> None:
    if not _originals:
        return
    import httpx

    httpx.HTTPTransport.handle_request = _originals.pop("sync")
    httpx.AsyncHTTPTransport.handle_async_request = _originals.pop("async_")
