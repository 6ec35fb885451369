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
