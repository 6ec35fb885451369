"""Installing an integration when its library is first imported, not before.

Importing a library only to patch it costs every process the library's memory, whether or not
the application uses it: Celery, kombu, billiard and redis-py alone are some 15 MB per worker in
a Django project that has them installed but never sends a task. `when_imported(name, install)`
runs `install()` at once when the module is already imported, and otherwise right after its
first import finishes (a meta path finder that wraps the module's loader for that one import,
then puts the original loader back).
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Callable
from typing import Any

_hooks: dict[str, list[Callable[[], Any]]] = {}
_lock = threading.RLock()


def when_imported(name: str, install: Callable[[], Any]) -> Any:
    """Runs `install()` now if module `name` is imported and returns its result; otherwise
    runs it right after the module's first import and returns None."""
    with _lock:
        if name not in sys.modules:
            _hooks.setdefault(name, []).append(install)
            if not any(isinstance(f, _Finder) for f in sys.meta_path):
                sys.meta_path.insert(0, _Finder())
            return None
    return _call(name, install)


def pending() -> list[str]:
    """Modules whose import an integration is still waiting for (diagnostics)."""
    with _lock:
        return sorted(_hooks)


def _call(name: str, install: Callable[[], Any]) -> Any:
    try:
        return install()
    except Exception:  # noqa: BLE001 - an integration never breaks the application's import
        from djtrace.sdk.trace import _report_internal_error

        _report_internal_error(f"install on import of {name}")
        return None


def _run(name: str) -> None:
    with _lock:
        callbacks = _hooks.pop(name, [])
    for install in callbacks:
        _call(name, install)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module it asks the other finders and wraps the
    loader they return."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _hooks:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, fullname)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module sees its own loader, as without us.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _run(self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)
