"""The Django application: `INSTALLED_APPS = [..., "djtrace"]` is all a project needs.

On ready() it configures the SDK from DJTRACE and the environment (unless already configured),
registers the system checks and installs every Django integration; the work is in
djtrace.integrations.django.
"""

from __future__ import annotations

from django.apps import AppConfig


class DjtraceConfig(AppConfig):
    name = "djtrace"
    label = "djtrace"
    verbose_name = "djtrace tracing"
    default = True

    def ready(self) -> None:
        from djtrace.integrations.django import setup

        setup()
