"""Which source files are application code, for the call sites that djtrace records natively
(`code.filepath` / `code.lineno` / `code.function` of queries, N+1 findings and repeated task
sends): the native frame walker stops at the first frame outside these directories."""

from __future__ import annotations

import os
import sys
import sysconfig

# Libraries whose frames are never the application's, wherever they are installed (an editable
# install lives outside site-packages).
_LIBRARIES = ("django", "djtrace", "asgiref", "opentelemetry", "celery", "kombu", "billiard")


def describe(finding: dict) -> str:
    """Where a finding (or a query's dict) comes from, for messages: "file:line in function",
    then the template and its line when a template made it."""
    where = (f"{finding['filepath']}:{finding['lineno']} in {finding['function']}"
             if finding.get("filepath") else "an unknown call site")
    template = finding.get("template")
    # A Jinja2 template is its own call site (its code is the template's): said once.
    if template and (template, finding.get("template_lineno")) != (
            finding.get("function"), finding.get("lineno")):
        where += f", template {template} line {finding['template_lineno']}"
    return where


def skip_prefixes() -> list[str]:
    """Directories whose frames are not application code (each ends with a separator)."""
    dirs: set[str] = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            path = sysconfig.get_paths().get(name)
        except Exception:  # noqa: BLE001
            path = None
        if path:
            dirs.add(path)
    try:
        import site

        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except Exception:  # noqa: BLE001 - some virtualenvs lack these
        pass
    for mod in _LIBRARIES:
        module = sys.modules.get(mod)
        paths = getattr(module, "__path__", None)
        if paths:
            dirs.update(paths)
    dirs.add(os.path.dirname(os.__file__))  # the standard library, whatever sysconfig says
    out = set()
    for d in dirs:
        if not d:
            continue
        for variant in (d, os.path.realpath(d)):
            out.add(variant.rstrip(os.sep) + os.sep)
    return sorted(out)


def resolve_app_code(entries: list[str] | tuple[str, ...]) -> list[str]:
    """The directories (each ending with a separator) and module files of the application's
    own code that `entries` name: absolute paths, or importable module or package names (a
    project installed into site-packages names its packages). Raises ValueError naming the
    first entry that is neither."""
    import importlib.util

    out: set[str] = set()
    for entry in entries:
        paths: list[str] = []
        if os.path.isabs(entry):
            if not os.path.exists(entry):
                raise ValueError(f"{entry!r} is not an existing directory or file")
            paths.append(entry)
        else:
            try:
                spec = importlib.util.find_spec(entry)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                raise ValueError(f"{entry!r} is neither an absolute path nor an importable module")
            if spec.submodule_search_locations:
                paths.extend(spec.submodule_search_locations)
            elif spec.origin and os.path.isabs(spec.origin):
                paths.append(spec.origin)
            else:
                raise ValueError(f"{entry!r} has no source files (a built-in or namespace module)")
        for path in paths:
            for variant in (path, os.path.realpath(path)):
                out.add(variant.rstrip(os.sep) + os.sep if os.path.isdir(variant) else variant)
    return sorted(out)

