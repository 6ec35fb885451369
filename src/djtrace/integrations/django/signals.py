"""Signals: optional spans for receivers, and the authentication signals as events.

Receiver spans (DJTRACE["signal_spans"], off by default) are named `signal <signal>
<receiver>` (`signal post_save web.receivers.order_saved`), with djtrace.signal.name and
code.function.name. With DJTRACE["signal_min_duration_ms"] above 0 only receivers at least that
slow get a span, recorded after the receiver returned (so spans the receiver made are not its
children then; the cheap option for production). Responses returned by Signal.send keep naming
the original receivers.

Authentication (DJTRACE["auth_events"], on by default): user_logged_in, user_logged_out and
user_login_failed become events of those names on the request span (or the current span
outside a request), with enduser.id for login and logout when capture_enduser is on; never the
credentials.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace as trace_api

from djtrace.integrations import _suppress
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.sdk.trace import _report_internal_error

SUPPRESSED = _suppress.SUPPRESSED

_signal_names: dict[int, str] = {}
_SIGNAL_MODULES = ("django.db.models.signals", "django.core.signals", "django.contrib.auth.signals",
                   "django.db.backends.signals", "django.test.signals")


def signal_name(signal: Any) -> str:
    if not _signal_names:
        import sys

        from django.dispatch import Signal

        for module_name in _SIGNAL_MODULES:
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for attr, value in vars(module).items():
                if isinstance(value, Signal):
                    _signal_names.setdefault(id(value), attr)
        _signal_names.setdefault(0, "")
    return _signal_names.get(id(signal), "")


def _receiver_name(receiver: Any) -> str:
    target = getattr(receiver, "__func__", receiver)
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{qualname}"


def _traced_receiver(receiver: Any, signal: Any, is_async: bool) -> Any:
    rname = _receiver_name(receiver)
    sname = signal_name(signal)
    name = f"signal {sname} {rname}" if sname else f"signal {rname}"
    attrs = {"code.function.name": rname}
    if sname:
        attrs["djtrace.signal.name"] = sname

    if is_async:
        async def call_async(**kwargs: Any) -> Any:
            min_ns = int(dj_settings.get().signal_min_duration_ms * 1e6)
            if min_ns > 0:
                start = time.time_ns()
                try:
                    return await receiver(**kwargs)
                finally:
                    _record_slow(name, attrs, start, min_ns)
            with _state.tracer().start_as_current_span(name, attributes=attrs):
                return await receiver(**kwargs)

        wrapper = call_async
    else:
        def call(**kwargs: Any) -> Any:
            min_ns = int(dj_settings.get().signal_min_duration_ms * 1e6)
            if min_ns > 0:
                start = time.time_ns()
                try:
                    return receiver(**kwargs)
                finally:
                    _record_slow(name, attrs, start, min_ns)
            with _state.tracer().start_as_current_span(name, attributes=attrs):
                return receiver(**kwargs)

        wrapper = call
    wrapper.__qualname__ = getattr(receiver, "__qualname__", wrapper.__qualname__)
    wrapper.__name__ = getattr(receiver, "__name__", wrapper.__name__)
    wrapper._djtrace_receiver = receiver
    return wrapper


def _record_slow(name: str, attrs: dict, start: int, min_ns: int) -> None:
    end = time.time_ns()
    if end - start < min_ns:
        return
    try:
        span = _state.tracer().start_span(name, attributes=attrs, start_time=start)
        span.end(end_time=end)
    except Exception:  # noqa: BLE001
        _report_internal_error("django slow signal span")


def _unwrap_responses(responses: Any) -> Any:
    if not responses:
        return responses
    return [(getattr(r, "_djtrace_receiver", r), value) for r, value in responses]


_originals: dict[str, Any] = {}


def install_receiver_spans() -> None:
    """Wraps Signal so receivers get spans while DJTRACE["signal_spans"] is on. Idempotent."""
    if _originals:
        return
    from django.dispatch import dispatcher

    cls = dispatcher.Signal
    orig_live = cls._live_receivers
    orig_send, orig_send_robust = cls.send, cls.send_robust
    orig_asend, orig_asend_robust = cls.asend, cls.asend_robust
    _originals.update(_live_receivers=orig_live, send=orig_send, send_robust=orig_send_robust,
                      asend=orig_asend, asend_robust=orig_asend_robust)

    def _live_receivers(self, sender):
        sync_receivers, async_receivers = orig_live(self, sender)
        if SUPPRESSED.get() or not dj_settings.get().signal_spans:
            return sync_receivers, async_receivers
        try:
            return ([_traced_receiver(r, self, False) for r in sync_receivers],
                    [_traced_receiver(r, self, True) for r in async_receivers])
        except Exception:  # noqa: BLE001
            _report_internal_error("django signal receivers")
            return sync_receivers, async_receivers

    def send(self, sender, **named):
        return _unwrap_responses(orig_send(self, sender, **named))

    def send_robust(self, sender, **named):
        return _unwrap_responses(orig_send_robust(self, sender, **named))

    async def asend(self, sender, **named):
        return _unwrap_responses(await orig_asend(self, sender, **named))

    async def asend_robust(self, sender, **named):
        return _unwrap_responses(await orig_asend_robust(self, sender, **named))

    cls._live_receivers = _live_receivers
    cls.send, cls.send_robust = send, send_robust
    cls.asend, cls.asend_robust = asend, asend_robust


def _settings_changed(cfg: dj_settings.DjangoSettings) -> None:
    if cfg.signal_spans and cfg.instrument:
        install_receiver_spans()


# -- authentication events -------------------------------------------------------------------

def _event_span() -> Any:
    rs = _state.REQUEST.get()
    if rs is not None:
        return rs.span
    span = trace_api.get_current_span()
    return span if span.is_recording() else None


def _auth_event(event: str, user: Any = None) -> None:
    cfg = dj_settings.get()
    if not cfg.auth_events or SUPPRESSED.get():
        return
    span = _event_span()
    if span is None:
        return
    attrs: dict[str, Any] = {}
    if user is not None and cfg.capture_enduser:
        pk = getattr(user, "pk", None)
        if pk is not None:
            attrs["enduser.id"] = str(pk)
    try:
        span.add_event(event, attrs)
        if event == "user_logged_in" and "enduser.id" in attrs:
            span.set_attribute("enduser.id", attrs["enduser.id"])
    except Exception:  # noqa: BLE001
        _report_internal_error("django auth event")


def _logged_in(sender: Any = None, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _auth_event("user_logged_in", user)


def _logged_out(sender: Any = None, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _auth_event("user_logged_out", user)


def _login_failed(sender: Any = None, credentials: Any = None, request: Any = None,
                  **kwargs: Any) -> None:
    _auth_event("user_login_failed")


def install() -> None:
    """Connects the authentication receivers; installs receiver spans when enabled."""
    try:
        from django.contrib.auth import signals as auth_signals
    except ImportError:  # pragma: no cover
        auth_signals = None
    if auth_signals is not None:
        auth_signals.user_logged_in.connect(_logged_in, dispatch_uid="djtrace.auth.login")
        auth_signals.user_logged_out.connect(_logged_out, dispatch_uid="djtrace.auth.logout")
        auth_signals.user_login_failed.connect(_login_failed, dispatch_uid="djtrace.auth.failed")
    dj_settings.on_change(_settings_changed)
    _settings_changed(dj_settings.get())
