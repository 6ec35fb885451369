"""Outgoing HTTP: CLIENT spans and trace-context injection for requests, urllib3 and httpx.

`install()` wraps whichever of the three is installed (the Django app calls it; other programs
may call it themselves after djtrace.configure()). A library an official OpenTelemetry
instrumentation already wraps is left to it. djtrace's own OTLP export is native and never goes
through these libraries.
"""

from __future__ import annotations

from collections.abc import Iterable

from djtrace.integrations.http import _common

CLIENTS = ("requests", "urllib3", "httpx")


def install(disabled: Iterable[str] = ()) -> dict[str, bool]:
    """Installs each client integration not named in `disabled` (names as in
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS), at once for a library already imported, otherwise
    when the application imports it. Returns, by name: True installed, False not (disabled,
    absent, or another instrumentation got there first), None waiting for the import."""
    from djtrace.integrations._imports import when_imported
    from djtrace.integrations.http import httpx_client, requests_client, urllib3_client
    from djtrace.sdk.trace import _report_internal_error

    skip = {d.strip().lower() for d in disabled}
    result = {}
    for name, module in (("requests", requests_client), ("urllib3", urllib3_client),
                         ("httpx", httpx_client)):
        if name in skip:
            result[name] = False
            continue
        try:
            # Now if the application imported the library already, else when it does.
            result[name] = when_imported(name, module.install)
        except Exception:  # noqa: BLE001
            _report_internal_error(f"http install {name}")
            result[name] = False
    _common.state.enabled = True
    return result


def set_enabled(enabled: bool) -> None:
    """Switches recording on or off without unwrapping (DJTRACE["http_client_spans"])."""
    _common.state.enabled = bool(enabled)


def uninstall() -> None:
    from djtrace.integrations.http import httpx_client, requests_client, urllib3_client

    for module in (requests_client, urllib3_client, httpx_client):
        module.uninstall()
