"""Management commands: each `manage.py <command>` and each call_command gets a span
`manage.py <name>` (a root span, or a child when called inside another traced operation, for
instance call_command from a view or from another command). A root command's span carries the
query statistics and N+1 findings of what it did; a child's queries count in the enclosing
operation's root, unless the command is not the project's (below).

Attributes: djtrace.command.name; djtrace.command.args and djtrace.command.options (strings,
`name=value` for options, redacted: sensitive option names lose their value, URLs their
credentials; Django's own common options and non-scalar values such as stdout are left out);
process.exit.code (0, a CommandError's returncode, a SystemExit code, or 1 for any other
exception, which is also recorded with an error status).

Commands that are not the project's (Django's own, such as migrate, loaddata and flush, and
those of installed libraries: their module is where the call-site walk skips frames, and
DJTRACE["app_code"] does not name it) are counted on their span but not checked for N+1s,
repeated cache gets or repeated task sends: their repeated statements are the framework's, and
strict mode would otherwise fail the test database's creation (migrate runs there). That holds
inside another traced operation too (loaddata called from a test's span): such a command's
queries count on its own span, not in the enclosing root, where their repetition would be
taken for the application's.

A command run from the command line (BaseCommand.run_from_argv) flushes its spans before the
process goes on to exit. Commands in DJTRACE["excluded_commands"] get no span: by default the
ones that serve or wait (runserver, shell, test, ...). The requests runserver serves are traced
as usual.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations import _tracing as tr
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.integrations.redaction import REDACTED, is_sensitive_key, redact_text
from djtrace.sdk.trace import _report_internal_error

SUPPRESSED = _suppress.SUPPRESSED

# Options every command has; they say nothing about what the command did.
_COMMON_OPTIONS = frozenset(("verbosity", "settings", "pythonpath", "traceback", "no_color",
                             "force_color", "skip_checks", "stdout", "stderr"))
_SCALARS = (str, int, float, bool)


def command_name(command: Any) -> str:
    module = type(command).__module__
    if ".management.commands." in module:
        return module.rsplit(".", 1)[1]
    return getattr(command, "_djtrace_name", None) or type(command).__name__.lower()


def is_project_command(command: Any) -> bool:
    """Whether the command's code is the project's, by the call-site walk's rule: its module
    is not in Django, an installed library or the standard library, unless DJTRACE["app_code"]
    names it. A command whose file is unknown counts as the project's."""
    path = getattr(sys.modules.get(type(command).__module__), "__file__", None)
    return not path or _native.db_is_app_path(os.path.realpath(path))


def _option_value(value: Any) -> str | None:
    if value is None or isinstance(value, _SCALARS):
        return redact_text(str(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return redact_text(",".join(str(v) for v in value))
    return None


def sanitised_options(options: dict) -> list[str]:
    out = []
    for key in sorted(options):
        if key in _COMMON_OPTIONS:
            continue
        if is_sensitive_key(key):
            out.append(f"{key}={REDACTED}")
            continue
        value = _option_value(options[key])
        if value is not None:
            out.append(f"{key}={value}")
    return out


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    code = getattr(exc, "returncode", None)
    return code if isinstance(code, int) else 1


class _Flush:
    pending = False


def _flush() -> None:
    """The command's spans, exported before manage.py exits."""
    tr.flush_before_exit(10000, "django command flush")


_originals: dict[str, Any] = {}


def install() -> None:
    """Wraps BaseCommand.execute and run_from_argv. Idempotent."""
    if _originals:
        return
    from django.core.management import base

    orig_execute = base.BaseCommand.execute
    orig_run = base.BaseCommand.run_from_argv
    _originals.update(execute=orig_execute, run_from_argv=orig_run)

    def execute(self, *args, **options):
        try:
            cfg = dj_settings.get()
            name = command_name(self)
            traced = (cfg.command_spans and cfg.instrument and name not in cfg.excluded_commands
                      and not SUPPRESSED.get())
            if traced:
                attrs: dict[str, Any] = {"djtrace.command.name": name}
                if args:
                    attrs["djtrace.command.args"] = [redact_text(str(a)) for a in args]
                opts = sanitised_options(options)
                if opts:
                    attrs["djtrace.command.options"] = opts
                scope = _state.tracer().start_as_current_span(
                    f"manage.py {name}", attributes=attrs, record_exception=False,
                    set_status_on_exception=False)
        except Exception:  # noqa: BLE001
            _report_internal_error("django command start")
            traced = False
        if not traced:
            return orig_execute(self, *args, **options)
        with scope as span:
            # A command of the project's called inside another traced operation of this
            # process (call_command from a view) is part of that operation's root: its queries
            # count there. Any other command counts its own, wherever it runs.
            parent = getattr(span, "parent", None)
            local_root = parent is None or bool(getattr(parent, "is_remote", False))
            token = _state.ROOT.set(_state.RootState(span)) if local_root else None
            try:
                if not is_project_command(self):
                    from djtrace.integrations.django.db import begin_local_root

                    begin_local_root(span, findings=False)
            except Exception:  # noqa: BLE001
                _report_internal_error("django command statistics")
            _Flush.pending = True
            try:
                result = orig_execute(self, *args, **options)
            except BaseException as exc:
                code = _exit_code(exc)
                span.set_attribute("process.exit.code", code)
                if code != 0:
                    span.record_exception(exc)
                    span.set_attribute("error.type", _state.qualified_name(type(exc)))
                    span.set_status(_state.STATUS_ERROR, f"{type(exc).__name__}: {exc}")
                raise
            else:
                span.set_attribute("process.exit.code", 0)
                return result
            finally:
                try:
                    if token is not None:
                        _state.ROOT.reset(token)
                except ValueError:
                    pass

    def run_from_argv(self, argv):
        try:
            return orig_run(self, argv)
        finally:
            if _Flush.pending:
                _Flush.pending = False
                _flush()

    execute.__wrapped__ = orig_execute
    run_from_argv.__wrapped__ = orig_run
    base.BaseCommand.execute = execute
    base.BaseCommand.run_from_argv = run_from_argv
