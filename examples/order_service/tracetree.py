"""Reads OTLP/JSON lines (what djtrace's `file` exporter appends, the OpenTelemetry Collector's
file format) and prints each trace as one tree, whichever processes its spans came from:
`python tracetree.py var/traces.jsonl [--all] [--verbose]`.

A Django request's middleware spans nest one in another; the tree folds such a chain into one
line (`middleware ×9`) and lists what ran inside the innermost. Identical leaf siblings (the
queries of an N+1) are folded into one line with a count.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

KINDS = {0: "", 1: "", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_ERROR = 2
REDACTION_MARKERS = ("[REDACTED]", "pseudo:")


def _value(v: dict):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _value(kv["value"]) for kv in v["kvlistValue"].get("values", [])}
    return None


def _attrs(items) -> dict:
    return {kv["key"]: _value(kv.get("value", {})) for kv in items or ()}


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    start: int
    end: int
    service: str
    scope: str
    attributes: dict
    events: list
    status_code: int
    status_message: str
    children: list = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) / 1e6

    @property
    def is_error(self) -> bool:
        return self.status_code == STATUS_ERROR

    @property
    def is_middleware(self) -> bool:
        last = self.name.rsplit(".", 1)[-1]
        return self.scope.startswith("djtrace.django") and last.endswith("Middleware")


def load(path: str | Path) -> list[Span]:
    """Every span of the file (a line being written by another process is skipped)."""
    spans = []
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return spans
    for line in lines:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        for rs in request.get("resourceSpans", ()):
            service = str(_attrs(rs.get("resource", {}).get("attributes")).get("service.name", "?"))
            for ss in rs.get("scopeSpans", ()):
                scope = ss.get("scope", {}).get("name", "")
                for s in ss.get("spans", ()):
                    status = s.get("status", {})
                    spans.append(Span(
                        trace_id=s["traceId"], span_id=s["spanId"],
                        parent_id=s.get("parentSpanId", ""), name=s["name"],
                        kind=int(s.get("kind", 0)), start=int(s["startTimeUnixNano"]),
                        end=int(s["endTimeUnixNano"]), service=service, scope=scope,
                        attributes=_attrs(s.get("attributes")),
                        events=[(e["name"], _attrs(e.get("attributes")))
                                for e in s.get("events", ())],
                        status_code=int(status.get("code", 0)),
                        status_message=status.get("message", ""),
                    ))
    return spans


def traces(spans: list[Span]) -> dict[str, list[Span]]:
    """Root spans by trace id, children linked and ordered by start time; traces in order."""
    by_id = {s.span_id: s for s in spans}
    roots: dict[str, list[Span]] = {}
    for s in spans:
        s.children = []
    for s in sorted(spans, key=lambda s: s.start):
        parent = by_id.get(s.parent_id)
        if parent is not None:
            parent.children.append(s)
        else:
            roots.setdefault(s.trace_id, []).append(s)
    return dict(sorted(roots.items(), key=lambda kv: kv[1][0].start))


def walk(span: Span):
    yield span
    for child in span.children:
        yield from walk(child)


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value * 1000:.0f} µs"


def _short_sql(text: str, width: int = 72) -> str:
    # The select list says little in a tree: SELECT … FROM "orders" WHERE ...
    upper = text.upper()
    if upper.startswith("SELECT ") and " FROM " in upper:
        text = "SELECT … " + text[upper.index(" FROM ") + 1:]
    text = text.replace('"', "")
    return text if len(text) <= width else text[: width - 1] + "…"


def _label(span: Span, parent: Span | None, verbose: bool) -> str:
    a = span.attributes
    parts = [span.name]
    kind = KINDS.get(span.kind, "")
    if kind and not (kind == "SERVER" and parent is None):
        parts.append(f"[{kind}]")
    parts.append(f"({_ms(span.duration_ms)})")
    if parent is None or parent.service != span.service:
        parts.append(f"⟨{span.service}⟩")
    if "http.response.status_code" in a:
        parts.append(f"→ {a['http.response.status_code']}")
    if "db.query.text" in a and span.kind == 3:
        parts.append(f"  {_short_sql(str(a['db.query.text']), 200 if verbose else 72)}")
    if verbose:
        for key, value in sorted(a.items()):
            if key not in ("db.query.text", "http.response.status_code"):
                parts.append(f"{key}={value!r}")
    if span.is_error:
        parts.append(f"ERROR {span.status_message!r}" if span.status_message else "ERROR")
    return " ".join(parts)


def _event_lines(span: Span) -> list[str]:
    lines = []
    for name, attrs in span.events:
        if name == "djtrace.n_plus_one":
            where = attrs.get("code.function") or attrs.get("code.filepath") or "?"
            line = attrs.get("code.lineno")
            lines.append(
                f"⚠ N+1: {attrs.get('djtrace.n_plus_one.count')} × "
                f"{attrs.get('db.query.summary', 'query')}"
                f" via {attrs.get('djtrace.orm.relation', '?')} in {where}"
                + (f":{line}" if line else ""))
        elif name == "exception":
            lines.append(f"✗ exception {attrs.get('exception.type')}: "
                         f"{attrs.get('exception.message')}")
        else:
            lines.append(f"• {name}")
    return lines


def _fold_middleware(span: Span) -> tuple[list[Span], Span]:
    """The chain of nested middleware spans starting at `span` and its innermost link."""
    chain = [span]
    while True:
        inner = [c for c in chain[-1].children if c.is_middleware]
        if len(inner) != 1:
            return chain, chain[-1]
        chain.append(inner[0])


def render(root: Span, verbose: bool = False) -> list[str]:
    out = [_label(root, None, verbose)]
    out += ["  " + line for line in _event_lines(root)]
    _render_children(root, root, "", out, verbose)
    return out


def _render_children(span: Span, parent_for_label: Span, prefix: str, out: list,
                     verbose: bool) -> None:
    groups: list[list[Span]] = []
    for child in span.children:
        last = groups[-1][0] if groups else None
        if (not verbose and last is not None and not child.children and not last.children
                and child.name == last.name and child.kind == last.kind
                and child.service == last.service):
            groups[-1].append(child)
        else:
            groups.append([child])
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
        child = group[0]
        if len(group) > 1:
            total = sum(s.duration_ms for s in group)
            text = _label(child, span, verbose).replace(
                f"({_ms(child.duration_ms)})", f"×{len(group)} ({_ms(total)} in all)", 1)
            out.append(prefix + branch + text)
            continue
        if child.is_middleware and not verbose:
            chain, innermost = _fold_middleware(child)
            if len(chain) > 1:
                names = " › ".join(s.name.rsplit(".", 1)[-1].removesuffix("Middleware")
                                   for s in chain)
                out.append(f"{prefix}{branch}middleware ×{len(chain)} "
                           f"({_ms(child.duration_ms)}): {names}")
                for line in _event_lines(child):
                    out.append(prefix + indent + "  " + line)
                _render_children(innermost, span, prefix + indent, out, verbose)
                continue
        out.append(prefix + branch + _label(child, span, verbose))
        for line in _event_lines(child):
            out.append(prefix + indent + "  " + line)
        _render_children(child, child, prefix + indent, out, verbose)


def summary_line(root: Span) -> str:
    count = sum(1 for _ in walk(root))
    return f"{root.name} ({_ms(root.duration_ms)}, {count} spans) trace={root.trace_id}"


def redacted_values(spans: list[Span]) -> dict[str, int]:
    """Attribute keys whose exported value was redacted, with how many times."""
    found: dict[str, int] = {}

    def visit(key: str, value) -> None:
        if isinstance(value, str) and any(m in value for m in REDACTION_MARKERS):
            found[key] = found.get(key, 0) + 1
        elif isinstance(value, list):
            for v in value:
                visit(key, v)

    for s in spans:
        for key, value in s.attributes.items():
            visit(key, value)
        for name, attrs in s.events:
            for key, value in attrs.items():
                visit(f"{name}:{key}", value)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Prints the traces of an OTLP/JSON-lines file as trees.")
    parser.add_argument("path")
    parser.add_argument("--verbose", action="store_true", help="every attribute, no folding")
    args = parser.parse_args(argv)
    for roots in traces(load(args.path)).values():
        for root in roots:
            print("\n".join(render(root, args.verbose)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
