"""One span per rendered template: `render orders/detail.html`.

Django engine: Template.render is what a backend, `{% include %}` and render_to_string call, so
wrapping it covers top-level and included templates; `{% extends %}` renders its parent
through Template._render, so ExtendsNode.render gets a span named after the parent. (Template.
_render itself is not wrapped: Django's test environment replaces it, which would silently drop
the spans in test suites.) A template without a name (built from a string) is `render
<string>`.

Jinja2: every compiled template's root render function is wrapped as Jinja creates it, which
covers top-level, included and extended templates alike.
"""

from __future__ import annotations

import inspect
from typing import Any

from djtrace import _native
from djtrace.integrations import _suppress
from djtrace.integrations.django import _state
from djtrace.integrations.django import settings as dj_settings
from djtrace.sdk.trace import _report_internal_error

SUPPRESSED = _suppress.SUPPRESSED
REQUEST = _state.REQUEST  # a request that is not recorded (sampled out) gets no template spans
_traced_call = _state.traced_call
_ATTRS_DJANGO = {"djtrace.template.engine": "django"}
_ATTRS_JINJA2 = {"djtrace.template.engine": "jinja2"}
_names: dict[Any, str] = {}


def _span_name(template_name: Any) -> str:
    name = _names.get(template_name)
    if name is None:
        name = f"render {template_name}" if template_name else "render <string>"
        if len(_names) < 4096:
            _names[template_name] = name
    return name


def _off() -> bool:
    """True when templates get no span: a request that is not recorded (sampled out),
    suppressed instrumentation, or template_spans off."""
    rs = REQUEST.get()
    return ((rs is not None and not rs.recording) or SUPPRESSED.get()
            or not dj_settings.get().template_spans)


def _django_wrapper(orig: Any, name_of: Any) -> Any:
    """Template.render or ExtendsNode.render in a span `render <name_of(self, context)>`
    (name_of None: the template's own name), natively: a page renders several templates."""
    render = _native.template_render(orig, name_of, _names, _span_name, dj_settings,
                                     SUPPRESSED, _state, _state.tracer,  # noqa: SLF001
                                     _ATTRS_DJANGO)
    return render


def _parent_name(node: Any, context: Any) -> Any:
    # The name of the template {% extends %} renders, found without loading it: a literal is
    # read off the node; a variable is resolved (side-effect free, unlike get_parent, which
    # records the templates it tried).
    cached = node.__dict__.get("_djtrace_parent")
    if cached is not None:
        return cached
    expr = node.parent_name
    var = getattr(expr, "var", None)
    if isinstance(var, str) and not getattr(expr, "filters", None):
        node._djtrace_parent = str(var)
        return node._djtrace_parent
    try:
        parent = expr.resolve(context)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(parent, str):
        return parent
    name = getattr(parent, "name", None)
    if name is None:
        name = getattr(getattr(parent, "template", None), "name", None)
    return name


def _traced_jinja_root(root: Any, template_name: Any) -> Any:
    name = _span_name(template_name)
    if inspect.isasyncgenfunction(root):

        async def traced_async(context):
            if _off():
                async for event in root(context):
                    yield event
                return
            with _state.tracer().start_as_current_span(name, attributes=_ATTRS_JINJA2):
                async for event in root(context):
                    yield event

        traced_async.__wrapped__ = root
        return traced_async

    def traced(context):
        if _off():
            yield from root(context)
            return
        # Jinja consumes these generators nested and in order (an include or a parent is
        # exhausted before the including template goes on), so the span may stay current
        # across the yields.
        with _state.tracer().start_as_current_span(name, attributes=_ATTRS_JINJA2):
            yield from root(context)

    traced.__wrapped__ = root
    return traced


_originals: dict[str, Any] = {}


def install() -> None:
    """Wraps the Django template engine. Idempotent."""
    if "render" in _originals:
        return
    from django.template import base, loader_tags

    _originals["render"] = base.Template.render
    base.Template.render = _django_wrapper(base.Template.render, None)
    _originals["extends"] = loader_tags.ExtendsNode.render
    loader_tags.ExtendsNode.render = _django_wrapper(loader_tags.ExtendsNode.render,
                                                      _parent_name)


def install_jinja2() -> bool:
    """Wraps Jinja2's templates as they are compiled. Idempotent; False without Jinja2."""
    if "jinja2" in _originals:
        return True
    try:
        from jinja2 import environment
    except ImportError:
        return False
    orig = environment.Template.__dict__["_from_namespace"]
    func = orig.__func__

    def _from_namespace(cls, env, namespace, globals):
        t = func(cls, env, namespace, globals)
        try:
            t.root_render_func = _traced_jinja_root(t.root_render_func, t.name)
        except Exception:  # noqa: BLE001
            _report_internal_error("jinja2 template wrap")
        return t

    _originals["jinja2"] = orig
    environment.Template._from_namespace = classmethod(_from_namespace)
    return True


def jinja2_configured() -> bool:
    """True when settings.TEMPLATES has a Jinja2 backend."""
    from django.conf import settings

    for engine in getattr(settings, "TEMPLATES", ()) or ():
        backend = str(engine.get("BACKEND", ""))
        if backend.endswith("jinja2.Jinja2") or "jinja2" in backend.lower():
            return True
    return False
