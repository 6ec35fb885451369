"""The report of a benchmark session: results.json, report.md and PNG charts.

Every figure is min / median / max over the session's runs; ratios are of medians, to the
untraced configuration and to the official stack's configuration of the same sampling, from
the same session; some goals also give the per-round (paired) figures. The goals of issue 7
are checked and marked pass or miss here (nothing gates on them)."""

from __future__ import annotations

import json
import math
import os
import statistics

from harness import procs

LABELS = {
    "untraced": "untraced",
    "otel-100": "official 100%",
    "otel-10": "official 10%",
    "djtrace-100": "djtrace 100%",
    "djtrace-10": "djtrace 10%",
    "ddtrace": "ddtrace 100%",
    "otel-0": "official, not sampled",
    "djtrace-0": "djtrace, not sampled",
}
COLORS = {"untraced": "#888888", "otel-100": "#d62728", "otel-10": "#ff9896",
          "djtrace-100": "#1f77b4", "djtrace-10": "#aec7e8", "ddtrace": "#9467bd"}


def official_of(config: str) -> str | None:
    if config.startswith("djtrace"):
        return "otel" + config[len("djtrace"):]
    if config == "ddtrace":
        return "otel-100"
    return None


def mmm(values) -> tuple[float, float, float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return (float("nan"),) * 3
    return min(values), statistics.median(values), max(values)


def med(values) -> float:
    return mmm(values)[1]


def pct(sorted_values: list, p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(math.ceil(p / 100 * len(sorted_values))) - 1))
    return sorted_values[k]


def fmt(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def fmt3(values, digits: int = 1) -> str:
    lo, mid, hi = mmm(values)
    return f"{fmt(lo, digits)} / **{fmt(mid, digits)}** / {fmt(hi, digits)}"


def ratio(a: float, b: float) -> str:
    if b in (0, None) or a is None or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.3f}x"


# ---------------------------------------------------------------------------------------- macro

def macro_rows(runs: dict) -> dict:
    """Per configuration: the per-run figures the tables and goals use."""
    out = {}
    for config, rows in runs.items():
        out[config] = {
            "throughput": [r["throughput"] for r in rows],
            "p50": [pct(r["latencies_us"], 50) / 1e3 for r in rows],
            "p90": [pct(r["latencies_us"], 90) / 1e3 for r in rows],
            "p99": [pct(r["latencies_us"], 99) / 1e3 for r in rows],
            "cpu": [r["cpu_ms_per_request"] for r in rows],
            "rss": [r["peak_rss_mb_per_worker"] for r in rows],
            "errors": sum(r["errors"] for r in rows),
            "requests": sum(r["requests"] for r in rows),
            "client_cpu": [r["client_cpu_s"] for r in rows],
            # Where the server CPU goes (absent from results written before they were read).
            **{k: [r.get(f"{k}_per_request", float("nan")) for r in rows]
               for k in procs.COUNTERS},
        }
    return out


def macro_tables(title: str, runs: dict, export: dict) -> list[str]:
    rows = macro_rows(runs)
    base = rows.get("untraced")
    lines = [f"### {title}", "",
             "| configuration | throughput req/s (min / **median** / max) | x untraced | "
             "x official | p50 ms | p90 ms | p99 ms (min / **median** / max) | p99 x untraced | "
             "p99 x official | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for config, r in rows.items():
        off = rows.get(official_of(config) or "")
        lines.append(
            f"| {LABELS.get(config, config)} | {fmt3(r['throughput'], 0)} | "
            f"{ratio(med(r['throughput']), med(base['throughput'])) if base else '-'} | "
            f"{ratio(med(r['throughput']), med(off['throughput'])) if off else '-'} | "
            f"{fmt(med(r['p50']), 2)} | {fmt(med(r['p90']), 2)} | {fmt3(r['p99'], 2)} | "
            f"{ratio(med(r['p99']), med(base['p99'])) if base else '-'} | "
            f"{ratio(med(r['p99']), med(off['p99'])) if off else '-'} | {r['errors']} |")
    lines += ["", "| configuration | server CPU ms/request (min / **median** / max) | "
              "x untraced | added ms | x official's added | peak RSS MB/worker (min / "
              "**median** / max) | added MB | exported KB/request |",
              "|---|---|---|---|---|---|---|---|"]
    for config, r in rows.items():
        off = rows.get(official_of(config) or "")
        added = med(r["cpu"]) - med(base["cpu"]) if base else float("nan")
        off_added = med(off["cpu"]) - med(base["cpu"]) if off and base else float("nan")
        share = f"{added / off_added:.2f}" if off and off_added > 0 else "-"
        kb = export.get(config)
        lines.append(
            f"| {LABELS.get(config, config)} | {fmt3(r['cpu'], 3)} | "
            f"{ratio(med(r['cpu']), med(base['cpu'])) if base else '-'} | "
            f"{fmt(added, 3) if config != 'untraced' else '-'} | {share} | {fmt3(r['rss'], 1)} | "
            f"{fmt(med(r['rss']) - med(base['rss']), 1) if base and config != 'untraced' else '-'}"
            f" | {fmt(kb, 2) if kb is not None else '-'} |")
    if base and not math.isnan(med(base["user_ms"])):
        lines += ["", "Where the server CPU goes, per request (medians; every thread of the "
                  "server's processes, from /proc): user and system time, minor page faults, "
                  "voluntary and involuntary context switches.", "",
                  "| configuration | user ms | system ms | added user / system ms | "
                  "minor faults | context switches (voluntary / involuntary) |",
                  "|---|---|---|---|---|---|"]
        for config, r in rows.items():
            added = "-" if config == "untraced" else (
                f"{med(r['user_ms']) - med(base['user_ms']):+.3f} / "
                f"{med(r['sys_ms']) - med(base['sys_ms']):+.3f}")
            lines.append(
                f"| {LABELS.get(config, config)} | {fmt(med(r['user_ms']), 3)} | "
                f"{fmt(med(r['sys_ms']), 3)} | {added} | {fmt(med(r['minflt']), 2)} | "
                f"{fmt(med(r['vcsw']), 2)} / {fmt(med(r['ivcsw']), 2)} |")
    lines.append("")
    bad = invalid(rows, *rows)
    if bad:
        lines += [f"**These figures are not valid**: more than {MAX_ERROR_RATE:.0%} of the "
                  f"requests failed ({bad.split(': ', 1)[1]}); CPU per request counts only the "
                  "requests that succeeded. The goals that use them are marked invalid.", ""]
    return lines


def error_rate(rows: dict) -> float:
    total = rows["requests"] + rows["errors"]
    return rows["errors"] / total if total else 1.0


MAX_ERROR_RATE = 0.01  # a configuration with more failed requests than this measured failures


def invalid(rows: dict, *configs: str) -> str | None:
    """Why the figures of `configs` cannot be judged (too many failed requests), or None."""
    bad = [f"{LABELS.get(c, c)} {error_rate(rows[c]) * 100:.0f}%" for c in configs
           if c in rows and error_rate(rows[c]) > MAX_ERROR_RATE]
    return ("failed requests: " + ", ".join(bad)) if bad else None


# ----------------------------------------------------------------------------------------- goals

def spread(values) -> float:
    lo, _, hi = mmm(values)
    return hi - lo


def paired(ours: list, base: list, op) -> str:
    """`op` of each run and the untraced run of the same round (runs are interleaved, so the
    pair saw the same machine load), as median (min-max): drift between rounds cancels."""
    values = [op(a, b) for a, b in zip(ours, base, strict=False)]
    if not values:
        return "-"
    lo, mid, hi = mmm(values)
    return f"{mid:.3f} ({lo:.3f}-{hi:.3f})"


def goal_line(name: str, ok: bool | None, detail: str, why_invalid: str | None = None) -> str:
    if why_invalid:
        return f"| {name} | invalid | {why_invalid}; {detail} |"
    mark = "n/a" if ok is None else ("**pass**" if ok else "**miss**")
    return f"| {name} | {mark} | {detail} |"


def goals(results: dict) -> list[str]:
    lines = ["| goal | result | figures (medians of the session) |", "|---|---|---|"]
    for server in ("gunicorn", "uvicorn"):
        runs = results.get("macro", {}).get(server)
        if not runs or "untraced" not in runs or "djtrace-100" not in runs:
            continue
        r = macro_rows(runs)
        u, d = r["untraced"], r["djtrace-100"]
        bad = invalid(r, "untraced", "djtrace-100")
        noise = spread(u["throughput"]) / med(u["throughput"])
        t = med(d["throughput"]) / med(u["throughput"])
        by_round = paired(d["throughput"], u["throughput"], lambda a, b: a / b)
        lines.append(goal_line(f"{server}: djtrace 100% throughput >= 0.97x untraced", t >= 0.97,
                               f"{t:.3f}x (untraced runs spread {noise * 100:.1f}%; paired by "
                               f"round {by_round}x)", bad))
        p = med(d["p99"]) / med(u["p99"])
        lines.append(goal_line(f"{server}: djtrace 100% p99 at most +3%", p <= 1.03,
                               f"{med(d['p99']):.2f} ms vs {med(u['p99']):.2f} ms "
                               f"({(p - 1) * 100:+.1f}%; untraced p99 spread "
                               f"{spread(u['p99']) / med(u['p99']) * 100:.1f}%)",
                               bad))
        m = med(d["rss"]) - med(u["rss"])
        lines.append(goal_line(f"{server}: djtrace 100% RSS per worker at most +10 MB", m <= 10,
                               f"{m:+.1f} MB ({med(d['rss']):.1f} vs {med(u['rss']):.1f} MB)",
                               bad))
    lines += quarter_goals(results)
    for server in ("gunicorn", "uvicorn"):
        runs = results.get("macro", {}).get(server)
        if not runs or "untraced" not in runs or "djtrace-10" not in runs:
            continue
        r = macro_rows(runs)
        u, d = r["untraced"], r["djtrace-10"]
        bad = invalid(r, "untraced", "djtrace-10")
        for key, name, unit, digits in (("throughput", "throughput", "req/s", 0),
                                        ("p99", "p99", "ms", 2), ("cpu", "CPU/request", "ms", 3)):
            diff = med(d[key]) - med(u[key])
            noise = spread(u[key])
            lines.append(goal_line(
                f"{server}: djtrace 10% {name} within untraced noise", abs(diff) <= noise,
                f"difference {diff:+.{digits}f} {unit}, "
                f"untraced runs spread {noise:.{digits}f} {unit}",
                bad))
    ip = results.get("inproc")
    if ip and "untraced" in ip and "djtrace-10" in ip:
        for key, name in (("process_cpu_us", "process CPU/request"),
                          ("thread_cpu_us", "request-thread CPU/request")):
            u = [x[key] for x in ip["untraced"]]
            diff = med([x[key] for x in ip["djtrace-10"]]) - med(u)
            lines.append(goal_line(f"in-process: djtrace 10% {name} within untraced noise",
                                   abs(diff) <= spread(u),
                                   f"difference {diff:+.0f} us, untraced runs spread "
                                   f"{spread(u):.0f} us"))
    return lines


def _quarter(name: str, ours: float, theirs: float, unit: str, digits: int,
             noise: float = 0.0, bad: str | None = None) -> str:
    if bad:
        return goal_line(name, None, f"djtrace adds {ours:+.{digits}f} {unit}, official "
                         f"{theirs:+.{digits}f} {unit}", bad)
    if theirs <= max(noise, 0) and ours <= max(noise, 0):
        return goal_line(name, None, f"djtrace adds {ours:+.{digits}f} {unit}, official "
                         f"{theirs:+.{digits}f} {unit}: both within noise ({noise:.{digits}f})")
    if theirs <= 0:
        return goal_line(name, ours <= 0, f"djtrace adds {ours:+.{digits}f} {unit}, official "
                         f"{theirs:+.{digits}f} {unit}")
    share = ours / theirs
    return goal_line(name, share <= 0.25, f"djtrace adds {ours:+.{digits}f} {unit}, official "
                     f"{theirs:+.{digits}f} {unit}: {share:.2f} of it")


def quarter_goals(results: dict) -> list[str]:
    lines = []
    for server in ("gunicorn", "uvicorn"):
        runs = results.get("macro", {}).get(server)
        if not runs or "untraced" not in runs:
            continue
        r = macro_rows(runs)
        u = r["untraced"]
        for ours, theirs in (("djtrace-100", "otel-100"), ("djtrace-10", "otel-10")):
            if ours not in r or theirs not in r:
                continue
            pct_ = ours.split("-")[1] + "%"
            bad = invalid(r, "untraced", ours, theirs)
            cpu_line = _quarter(
                f"{server} {pct_}: djtrace adds <= 1/4 of the official CPU/request",
                med(r[ours]["cpu"]) - med(u["cpu"]), med(r[theirs]["cpu"]) - med(u["cpu"]),
                "ms", 3, spread(u["cpu"]), bad)
            added = [a - b for a, b in zip(r[ours]["cpu"], u["cpu"], strict=False)]
            official_added = [a - b for a, b in zip(r[theirs]["cpu"], u["cpu"], strict=False)]
            share = paired(added, official_added, lambda a, b: a / b if b > 0 else math.nan)
            lines.append(cpu_line[:-2] + f"; paired by round {share} |")
            lines.append(_quarter(
                f"{server} {pct_}: djtrace loses <= 1/4 of the official throughput loss",
                (1 - med(r[ours]["throughput"]) / med(u["throughput"])) * 100,
                (1 - med(r[theirs]["throughput"]) / med(u["throughput"])) * 100, "%", 1,
                spread(u["throughput"]) / med(u["throughput"]) * 100, bad))
            lines.append(_quarter(
                f"{server} {pct_}: djtrace adds <= 1/4 of the official p99",
                med(r[ours]["p99"]) - med(u["p99"]), med(r[theirs]["p99"]) - med(u["p99"]),
                "ms", 2, spread(u["p99"]), bad))
            lines.append(_quarter(
                f"{server} {pct_}: djtrace adds <= 1/4 of the official RSS/worker",
                med(r[ours]["rss"]) - med(u["rss"]), med(r[theirs]["rss"]) - med(u["rss"]),
                "MB", 1, spread(u["rss"]), bad))
    ins = results.get("instructions")
    if ins and {"untraced", "otel-100", "djtrace-100"} <= set(ins):
        t = instruction_totals(ins)
        for key, what in (("request", "request thread"), ("all", "every thread")):
            ours = t["djtrace-100"][key] - t["untraced"][key]
            theirs = t["otel-100"][key] - t["untraced"][key]
            share = ours / theirs if theirs > 0 else math.nan
            lines.append(goal_line(
                f"instructions, mix 100% ({what}): djtrace adds <= 1/10 of the official "
                "(issue 3)", share <= 0.10,
                f"djtrace adds {ours / 1e6:+.3f} M, official {theirs / 1e6:+.3f} M: "
                f"{share:.3f} of it"))
    gi = results.get("instructions_gunicorn")
    if gi and {"untraced", "otel-100", "djtrace-100"} <= set(gi):
        t = gunicorn_totals(gi)
        for key, what in (("request_thread", "request thread"), ("all", "every thread")):
            base = t["untraced"][key]
            ours, theirs = t["djtrace-100"][key] - base, t["otel-100"][key] - base
            share = ours / theirs if theirs > 0 else math.nan
            lines.append(goal_line(
                f"instructions, mix 100% in a Gunicorn worker ({what}): djtrace adds <= 1/10 "
                "of the official (issue 3)", share <= 0.10,
                f"djtrace adds {ours / 1e6:+.3f} M ({ours / base:+.1%}), "
                f"official {theirs / 1e6:+.3f} M ({theirs / base:+.1%}): {share:.3f} of it"))
    ip = results.get("inproc")
    if ip and "untraced" in ip:
        def pc(config):
            return [x["process_cpu_us"] for x in ip[config]]
        u = med(pc("untraced"))
        for ours, theirs in (("djtrace-100", "otel-100"), ("djtrace-10", "otel-10")):
            if ours in ip and theirs in ip:
                lines.append(_quarter(
                    f"in-process mix {ours.split('-')[1]}%: djtrace adds <= 1/4 of the official "
                    "CPU/request", med(pc(ours)) - u, med(pc(theirs)) - u, "us", 0,
                    spread(pc("untraced"))))
    micro = results.get("micro", {})
    s = micro.get("spans")
    if s:
        u = med([x["calling_us"] for x in s["untraced"]])
        for ours, theirs, what in (("djtrace-100", "otel-100", "recorded"),
                                   ("djtrace-0", "otel-0", "not sampled")):
            if ours not in s or theirs not in s:
                continue
            lines.append(_quarter(f"span through the API, {what}: <= 1/4 of the official cost",
                                  med([x["calling_us"] for x in s[ours]]) - u,
                                  med([x["calling_us"] for x in s[theirs]]) - u, "us", 3))
    o = micro.get("orm")
    if o:
        u = med([x["cpu_us_per_query"] for x in o["untraced"]])
        noise = spread([x["cpu_us_per_query"] for x in o["untraced"]])
        for ours, theirs in (("djtrace-100", "otel-100"), ("djtrace-10", "otel-10")):
            if ours not in o or theirs not in o:
                continue
            lines.append(_quarter(f"ORM query hook, {ours.split('-')[1]}%: <= 1/4 of the official",
                                  med([x["cpu_us_per_query"] for x in o[ours]]) - u,
                                  med([x["cpu_us_per_query"] for x in o[theirs]]) - u, "us CPU",
                                  1, noise))
    p = micro.get("pii")
    if p and p.get("guide-regex"):
        ours = med([x["ns_per_span"] for x in p["djtrace-default"]])
        theirs = med([x["ns_per_span"] for x in p["guide-regex"]])
        lines.append(_quarter("PII redaction per span: <= 1/4 of the guide's processor", ours / 1e3,
                              theirs / 1e3, "us", 2))
    e = micro.get("encode")
    if e:
        ours = 1e6 / med([x["protobuf_spans_per_s"] for x in e["djtrace"]])
        theirs = 1e6 / med([x["protobuf_spans_per_s"] for x in e["official"]])
        lines.append(_quarter("OTLP encoding per span: <= 1/4 of the official", ours, theirs,
                              "us", 3))
    c = results.get("celery")
    if c and {"untraced", "otel-100", "djtrace-100"} <= set(c):
        def cpu(rows):
            return [x["worker_cpu_us"] + x["producer_cpu_us"] for x in rows]
        u = med(cpu(c["untraced"]))
        lines.append(_quarter("Celery task (producer + worker CPU): <= 1/4 of the official",
                              med(cpu(c["djtrace-100"])) - u, med(cpu(c["otel-100"])) - u,
                              "us", 0, spread(cpu(c["untraced"]))))
        ut = med([x["tasks_per_s"] for x in c["untraced"]])
        lines.append(_quarter(
            "Celery throughput loss: <= 1/4 of the official",
            (1 - med([x["tasks_per_s"] for x in c["djtrace-100"]]) / ut) * 100,
            (1 - med([x["tasks_per_s"] for x in c["otel-100"]]) / ut) * 100, "%", 1,
            spread([x["tasks_per_s"] for x in c["untraced"]]) / ut * 100))
    return lines


# ----------------------------------------------------------------------------------------- micro

def micro_tables(micro: dict) -> list[str]:
    lines = []
    s = micro.get("spans")
    if s:
        u = med([x["calling_us"] for x in s["untraced"]])
        lines += ["### Per span through the OpenTelemetry API (bench/spans.py's workload)", "",
                  "`with start_as_current_span(...)` + 3 set_attribute; batch processor + "
                  "OTLP/HTTP to a local sink; wall time of the calling thread.", "",
                  "| configuration | us/span (min / **median** / max) | added us | x official's "
                  "added | end to end us/span | Python heap per queued span |",
                  "|---|---|---|---|---|---|"]
        for config, rows in s.items():
            v = [x["calling_us"] for x in rows]
            added = med(v) - u
            off = {"djtrace-100": "otel-100", "djtrace-0": "otel-0"}.get(config)
            share = "-"
            if off:
                oa = med([x["calling_us"] for x in s[off]]) - u
                share = f"{added / oa:.2f}" if oa > 0 else "-"
            lines.append(f"| {LABELS.get(config, config)} | {fmt3(v, 3)} | "
                         f"{fmt(added, 3) if config != 'untraced' else '-'} | {share} | "
                         f"{fmt(med([x['end_to_end_us'] for x in rows]), 3)} | "
                         f"{fmt(med([x['heap_bytes'] for x in rows]), 0)} B |")
        lines.append("")
    o = micro.get("orm")
    if o:
        u = med([x["cpu_us_per_query"] for x in o["untraced"]])
        lines += ["### Per ORM query (PostgreSQL, six queries per root span)", "",
                  "CPU time of the application thread per `Order.objects.filter(pk=...).first()` "
                  "on the app's Order model, measured in the in-process workload's processes.",
                  "", "| configuration | CPU us/query (min / **median** / max) | added us | "
                  "x official's added |", "|---|---|---|---|"]
        for config, rows in o.items():
            v = [x["cpu_us_per_query"] for x in rows]
            added = med(v) - u
            off = official_of(config)
            share = "-"
            if off and off in o:
                oa = med([x["cpu_us_per_query"] for x in o[off]]) - u
                share = f"{added / oa:.2f}" if oa > 0 else "-"
            lines.append(f"| {LABELS.get(config, config)} | {fmt3(v, 1)} | "
                         f"{fmt(added, 1) if config != 'untraced' else '-'} | {share} |")
        lines.append("")
    q = micro.get("sql")
    if q:
        lines += ["### SQL fingerprint (djtrace native, one core, CPU time)", "",
                  "| path | ns/statement (min / **median** / max) |", "|---|---|",
                  f"| cold (obfuscate + fingerprint) | {fmt3([x['cold_ns'] for x in q], 0)} |",
                  f"| cached (SqlCache hit) | {fmt3([x['cached_ns'] for x in q], 0)} |", "",
                  f"Ten ORM statements of {q[0]['mean_bytes']} bytes on average. The official "
                  "stack has no counterpart (it exports the SQL text as is).", ""]
    p = micro.get("pii")
    if p:
        g = p.get("guide-regex", [])
        lines += ["### PII redaction (bench/pii.py's corpus, one core)", "",
                  "| engine | MB/s (min / **median** / max) | ns per 10-attribute span (median) | "
                  "x guide's throughput |", "|---|---|---|---|"]
        for name, rows in p.items():
            label = ("guide's three-regex Python processor" if name == "guide-regex"
                     else f"djtrace native, {name.split('-', 1)[1]} profile")
            mb = [x["mb_per_s"] for x in rows]
            lines.append(f"| {label} | {fmt3(mb, 1)} | "
                         f"{fmt(med([x['ns_per_span'] for x in rows]), 0)}"
                         f" | {ratio(med(mb), med([x['mb_per_s'] for x in g])) if g else '-'} |")
        lines.append("")
    e = micro.get("encode")
    if e:
        off = med([x["protobuf_spans_per_s"] for x in e["official"]])
        lines += ["### OTLP encoding (bench/encode.py, one core, batches of 512 spans)", "",
                  "| encoder | spans/s (min / **median** / max) | x official |", "|---|---|---|"]
        for key, label in (("protobuf_spans_per_s", "djtrace protobuf"),
                           ("protobuf_gzip_spans_per_s", "djtrace protobuf + gzip"),
                           ("json_spans_per_s", "djtrace OTLP/JSON")):
            v = [x[key] for x in e["djtrace"]]
            lines.append(f"| {label} | {fmt3(v, 0)} | {ratio(med(v), off)} |")
        lines.append(f"| opentelemetry-sdk Python encoder | "
                     f"{fmt3([x['protobuf_spans_per_s'] for x in e['official']], 0)} | 1.000x |")
        lines.append("")
    return lines


def inproc_table(runs: dict) -> list[str]:
    base = runs.get("untraced")
    lines = ["| configuration | process CPU us/request (min / **median** / max) | x untraced | "
             "added us | x official's added | request-thread CPU us/request | added us | "
             "wall us/request | errors |", "|---|---|---|---|---|---|---|---|---|"]
    bp = med([x["process_cpu_us"] for x in base]) if base else float("nan")
    bt = med([x["thread_cpu_us"] for x in base]) if base else float("nan")
    for config, rows in runs.items():
        pc = [x["process_cpu_us"] for x in rows]
        tc = med([x["thread_cpu_us"] for x in rows])
        off = runs.get(official_of(config) or "")
        share = "-"
        if off:
            oa = med([x["process_cpu_us"] for x in off]) - bp
            share = f"{(med(pc) - bp) / oa:.2f}" if oa > 0 else "-"
        lines.append(
            f"| {LABELS.get(config, config)} | {fmt3(pc, 0)} | {ratio(med(pc), bp)} | "
            f"{fmt(med(pc) - bp, 0) if config != 'untraced' else '-'} | {share} | {fmt(tc, 0)} | "
            f"{fmt(tc - bt, 0) if config != 'untraced' else '-'} | "
            f"{fmt(med([x['wall_us'] for x in rows]), 0)} | {sum(x['errors'] for x in rows)} |")
    return lines + [""]


def instruction_totals(runs: dict) -> dict:
    """Per configuration: the request thread's instructions per request, averaged over the mix's
    endpoints (equally weighted, as the HTTP mix is), and with the other threads' share."""
    out = {}
    for config, r in runs.items():
        ep = r["endpoints"]
        if not ep:
            continue
        request = sum(ep.values()) / len(ep)
        out[config] = {"request": request, "all": request + r["other_threads"]}
    return out


def instruction_table(runs: dict) -> list[str]:
    base, off, ours = runs.get("untraced"), runs.get("otel-100"), runs.get("djtrace-100")
    if not (base and off and ours):
        return []

    def m(x: float) -> str:
        return f"{x / 1e6:.2f} M"

    def added(x: float) -> str:
        return f"{x / 1e6:+.3f} M"

    lines = ["| endpoint | untraced | official 100% adds | djtrace 100% adds | "
             "x official's added |", "|---|---|---|---|---|"]
    for label, u in base["endpoints"].items():
        o, d = off["endpoints"].get(label), ours["endpoints"].get(label)
        if o is None or d is None:
            continue
        share = f"{(d - u) / (o - u):.3f}" if o > u else "-"
        lines.append(f"| {label} (request thread) | {m(u)} | {added(o - u)} | {added(d - u)} | "
                     f"{share} |")
    t = instruction_totals(runs)
    u, o, d = t["untraced"], t["otel-100"], t["djtrace-100"]
    for key, what in (("request", "mix, request thread"),
                      ("all", "mix, every thread (export worker included)")):
        share = f"**{(d[key] - u[key]) / (o[key] - u[key]):.3f}**" if o[key] > u[key] else "-"
        lines.append(f"| {what} | {m(u[key])} | {added(o[key] - u[key])} | "
                     f"{added(d[key] - u[key])} | {share} |")
    lines.append(f"| other threads per request served | {m(base['other_threads'])} | "
                 f"{added(off['other_threads'] - base['other_threads'])} | "
                 f"{added(ours['other_threads'] - base['other_threads'])} | - |")
    errors = sum(r.get("errors", 0) for r in runs.values())
    return lines + ["", f"Requests that failed during the counts: {errors}.", ""]


def gunicorn_totals(runs: dict) -> dict:
    """Per configuration of the Gunicorn-worker count: its request thread's, other threads' and
    all threads' instructions per request."""
    return {config: {"request_thread": r["request_thread"], "other_threads": r["other_threads"],
                     "all": r["request_thread"] + r["other_threads"]}
            for config, r in runs.items()}


def gunicorn_instruction_table(runs: dict) -> list[str]:
    if not {"untraced", "otel-100", "djtrace-100"} <= set(runs):
        return []
    t = gunicorn_totals(runs)
    lines = ["| per request of the mix | untraced | official 100% adds | djtrace 100% adds | "
             "x official's added |", "|---|---|---|---|---|"]
    for key, what in (("request_thread", "request thread"),
                      ("other_threads", "the worker's other threads (export)"),
                      ("all", "every thread")):
        u, o, d = t["untraced"][key], t["otel-100"][key], t["djtrace-100"][key]
        share = f"**{(d - u) / (o - u):.3f}**" if o > u else "-"

        def added(x: float, u: float = u) -> str:
            return f"{(x - u) / 1e6:+.3f} M" + (f" ({(x - u) / u:+.1%})" if u > 0 else "")

        lines.append(f"| {what} | {u / 1e6:.2f} M | {added(o)} | {added(d)} | {share} |")
    errors = sum(r.get("errors", 0) for r in runs.values())
    return lines + ["", f"Requests that failed during the counts: {errors}.", ""]


def celery_table(c: dict) -> list[str]:
    base = c["untraced"]
    lines = ["| configuration | tasks/s (min / **median** / max) | x untraced | x official | "
             "worker CPU us/task | producer CPU us/task | added CPU us/task |",
             "|---|---|---|---|---|---|---|"]
    ub = med([x["worker_cpu_us"] + x["producer_cpu_us"] for x in base])
    for config, rows in c.items():
        t = [x["tasks_per_s"] for x in rows]
        off = c.get(official_of(config) or "")
        total = med([x["worker_cpu_us"] + x["producer_cpu_us"] for x in rows])
        lines.append(
            f"| {LABELS.get(config, config)} | {fmt3(t, 0)} | "
            f"{ratio(med(t), med([x['tasks_per_s'] for x in base]))} | "
            f"{ratio(med(t), med([x['tasks_per_s'] for x in off])) if off else '-'} | "
            f"{fmt3([x['worker_cpu_us'] for x in rows], 0)} | "
            f"{fmt(med([x['producer_cpu_us'] for x in rows]), 0)} | "
            f"{fmt(total - ub, 0) if config != 'untraced' else '-'} |")
    return lines + [""]


def unreachable_table(u: dict, reachable: dict) -> list[str]:
    lines = ["| configuration | req/s first third | req/s last third | last / first | "
             "x reachable | RSS MB/worker first | RSS MB/worker last | growth MB | "
             "CPU ms/request |", "|---|---|---|---|---|---|---|---|---|"]
    for config, r in u.items():
        sl = r["slices"]
        k = max(1, len(sl) // 3)
        first = sum(sl[:k]) / (k * r["slice_s"])
        last = sum(sl[-k:]) / (k * r["slice_s"])
        rss = [m for _, m in r["rss_samples"]]
        k2 = max(1, len(rss) // 3)
        f_rss, l_rss = statistics.mean(rss[:k2]), statistics.mean(rss[-k2:])
        whole = sum(sl) / (len(sl) * r["slice_s"])
        ref = med(reachable[config]["throughput"]) if config in reachable else float("nan")
        lines.append(f"| {LABELS.get(config, config)} | {first:.0f} | {last:.0f} | "
                     f"{last / first if first else float('nan'):.3f} | {ratio(whole, ref)} | "
                     f"{f_rss:.1f} | {l_rss:.1f} | "
                     f"{l_rss - f_rss:+.1f} | {r['cpu_ms_per_request']:.3f} |")
    return lines + [""]


# ---------------------------------------------------------------------------------------- charts

def charts(results: dict, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    macro = results.get("macro", {})
    servers = [s for s in ("gunicorn", "uvicorn") if macro.get(s)]
    if servers:
        fig, axes = plt.subplots(1, len(servers), figsize=(6.5 * len(servers), 4.5),
                                 squeeze=False)
        for ax, server in zip(axes[0], servers, strict=True):
            for config, rows in macro[server].items():
                lat = sorted(x for r in rows for x in r["latencies_us"])
                if not lat:
                    continue
                n = len(lat)
                ps = [p for p in (1, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9)
                      if n >= 100 / (100 - p)]
                xs = [1 / (1 - p / 100) for p in ps]
                ax.plot(xs, [pct(lat, p) / 1e3 for p in ps], marker="o", ms=3,
                        label=LABELS.get(config, config), color=COLORS.get(config))
            ax.set_xscale("log")
            ticks = [p for p in (50, 90, 99, 99.9)]
            ax.set_xticks([1 / (1 - p / 100) for p in ticks])
            ax.set_xticklabels([f"p{p:g}" for p in ticks])
            ax.set_ylabel("latency (ms)")
            ax.set_title(f"{server}: latency by percentile (all runs)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, "latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append("latency.png")

        for key, name, ylabel in (("throughput", "throughput", "requests/s"),
                                  ("rss", "memory", "peak RSS per worker (MB)"),
                                  ("cpu", "cpu", "server CPU per request (ms)")):
            fig, axes = plt.subplots(1, len(servers), figsize=(6.5 * len(servers), 4.2),
                                     squeeze=False)
            for ax, server in zip(axes[0], servers, strict=True):
                rows = macro_rows(macro[server])
                names = list(rows)
                mids = [med(rows[c][key]) for c in names]
                lo = [m - mmm(rows[c][key])[0] for m, c in zip(mids, names, strict=True)]
                hi = [mmm(rows[c][key])[2] - m for m, c in zip(mids, names, strict=True)]
                ax.bar(range(len(names)), mids, yerr=[lo, hi], capsize=4,
                       color=[COLORS.get(c, "#555") for c in names])
                ax.set_xticks(range(len(names)))
                ax.set_xticklabels([LABELS.get(c, c) for c in names], rotation=25, ha="right",
                                   fontsize=8)
                ax.set_ylabel(ylabel)
                ax.set_title(f"{server}: {ylabel} (median, min-max)")
                ax.grid(axis="y", alpha=0.3)
                if key == "rss":
                    bottom = min(mmm(rows[c][key])[0] for c in names)
                    ax.set_ylim(bottom * 0.8, None)
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=110)
            plt.close(fig)
            written.append(f"{name}.png")

    u = results.get("unreachable")
    if u:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
        for config, r in u.items():
            xs = [(i + 0.5) * r["slice_s"] for i in range(len(r["slices"]))]
            a1.plot(xs, [n / r["slice_s"] for n in r["slices"]], marker="o", ms=3,
                    label=LABELS.get(config, config), color=COLORS.get(config))
            a2.plot([t for t, _ in r["rss_samples"]], [m for _, m in r["rss_samples"]],
                    label=LABELS.get(config, config), color=COLORS.get(config))
        a1.set_title("unreachable collector: throughput")
        a1.set_xlabel("s after the warm-up")
        a1.set_ylabel("requests/s")
        a1.set_ylim(0, None)
        a2.set_title("unreachable collector: RSS per worker")
        a2.set_xlabel("s since the load started (1 s warm-up)")
        a2.set_ylabel("MB")
        for a in (a1, a2):
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "unreachable.png"), dpi=110)
        plt.close(fig)
        written.append("unreachable.png")
    return written


# ---------------------------------------------------------------------------------------- report

def write(results: dict, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f)
    try:
        pngs = charts(results, out_dir)
    except Exception as exc:  # noqa: BLE001 - the tables still matter without charts
        results.setdefault("failures", {})["charts"] = repr(exc)
        pngs = []
    meta = results["meta"]
    m = meta["machine"]
    p = meta["params"]
    lines = [f"# djtrace side-by-side benchmark ({'quick' if p['quick'] else 'full'})", "",
             f"Command: `{meta['command']}`  ",
             f"Started {meta['started']}, took {meta.get('elapsed_s', 0):.0f} s (benchmark "
             f"only; set-up before it: {meta.get('setup_s', 0):.0f} s).", "",
             "## Machine", "",
             f"- {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']:.1f} GiB, Linux "
             f"{m['kernel']}; a shared machine (colleagues compile on it)",
             f"- load average at start: {' / '.join(f'{x:.2f}' for x in m['loadavg'])} "
             f"(1 / 5 / 15 min); at the end: "
             f"{' / '.join(f'{x:.2f}' for x in meta.get('loadavg_end', []))}",
             f"- app: {meta['target']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "## Method", "",
             f"Configurations run in the same session, interleaved (A B C ... A B C ...), "
             f"{p['rounds']} runs each. Every figure: min / **median** / max over runs; ratios "
             "are of medians, to the untraced run and to the official stack at the same "
             "sampling (ddtrace: to the official stack at 100%). Where a goal says \"paired by "
             "round\", each run is compared with the untraced (or official) run of the same "
             "round, and the median (min-max) of those per-round figures is given: load that "
             "drifts between rounds cancels in them. The pass or miss marks use the ratios of "
             "medians. "
             f"HTTP: {p['workers']} Gunicorn sync workers / one uvicorn process, "
             f"{p['concurrency']} concurrent keep-alive connections from a Python load "
             f"generator on 127.0.0.1, {p['warmup']:g} s warm-up then {p['duration']:g} s measured "
             f"per run, over the mix {meta.get('mix', '')}; PostgreSQL and Redis (cache, Celery "
             "broker) on 127.0.0.1, persistent database connections under Gunicorn "
             + ("(none under uvicorn, as Django advises for ASGI without a pool). "
                if p.get("asgi_conn_max_age", 600) == 0 else "and uvicorn. ")
             + "Failed requests are counted apart "
             "and left out of the latencies. CPU per request: user + system time of the server's "
             "processes (/proc) over every request a run served; it does not move with the "
             "machine's other load the way throughput does. Memory: peak RSS (VmHWM) per "
             "worker. Every tracer exports OTLP/HTTP protobuf (ddtrace its own protocol) to a "
             "sink process of its own that reads and discards.", ""]
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", "## Goals (issue 7)", ""] + goals(results) + [
        "", "Noise is the spread (max - min) of the untraced runs of the same session. A goal "
        "on 'every workload' is n/a where neither stack's overhead exceeds that noise.", ""]
    macro = results.get("macro", {})
    if macro:
        lines += ["## HTTP: the endpoint mix", ""]
        for server, runs in macro.items():
            title = ("Gunicorn, sync workers (WSGI)" if server == "gunicorn"
                     else "uvicorn (ASGI)")
            lines += macro_tables(title, runs, results.get("export_kb", {}).get(server, {}))
        lines += ["Exported KB/request: bytes the configuration's sink received over the whole "
                  "session divided by the requests served (spans still queued at the end are "
                  "not in it).", ""]
        for png in ("latency.png", "throughput.png", "cpu.png", "memory.png"):
            if png in pngs:
                lines.append(f"![{png[:-4]}]({png})")
        lines.append("")
    if results.get("inproc"):
        lines += ["## The endpoint mix in-process (Django test client)", "",
                  f"{p['inproc_requests']} requests of the same mix per run, no server: CPU "
                  "time per request of the whole process (the tracer's export thread and a "
                  "final flush included) and of the request thread alone. On a shared machine "
                  "these move far less than throughput does.", ""]
        lines += inproc_table(results["inproc"])
    if results.get("instructions"):
        lines += ["## Instructions per request (callgrind)", "",
                  f"The same mix in-process under valgrind's callgrind, one process per "
                  f"configuration on a freshly seeded database: {p.get('instr_warmup', 0)} "
                  f"warm-up passes over the mix, then {p.get('instr_requests', 0)} requests of "
                  "each endpoint in turn, counting the request thread's instructions (garbage "
                  "collected and frozen before each count). The other threads (export workers) "
                  "are counted over the whole process and divided by every request it served. "
                  "Instruction counts do not move with the machine's load; the time figures "
                  "above do. They do move a few percent with memory layout (the same hash seed "
                  "for every configuration here), and each endpoint's by up to about 0.1 M "
                  "between sessions with where the garbage collector's collections fall; the "
                  "mix's totals move far less.", ""]
        lines += instruction_table(results["instructions"])
    if results.get("instructions_gunicorn"):
        lines += ["### The same mix inside a Gunicorn sync worker", "",
                  "One Gunicorn sync worker per configuration under callgrind (the benchmark's "
                  "gunicorn_conf.py with one worker, PostgreSQL and Redis as above), the "
                  "requests sent one at a time over a socket by the load generator: "
                  f"{p.get('instr_warmup', 0)} passes over the mix to warm up, then "
                  f"{p.get('instr_requests', 0)} passes counted on the worker's request thread. "
                  "The worker's other threads are counted over its whole life and divided by "
                  "every request it served. What only a real server does per request (the "
                  "WSGI environ, the access-log hook, the persistent database connection) is "
                  "in these counts; what they cannot show is the time the same instructions "
                  "take when five workers, the load generator and the databases share two "
                  "cores (the throughput figures above).", ""]
        lines += gunicorn_instruction_table(results["instructions_gunicorn"])
    if results.get("unreachable"):
        lines += ["## Export under an unreachable collector", "",
                  f"Gunicorn, the same servers and mix as above, {p['unreachable_s']:g} s (after "
                  "1 s of warm-up) while the exporter's collector cannot be reached: its sink "
                  "accepts connections but never reads nor answers, so every export waits for "
                  "its timeout and the batch queue fills. Throughput and memory should stay "
                  "flat; 'x reachable' compares with the same configuration's runs above.", ""]
        lines += unreachable_table(results["unreachable"],
                                   macro_rows(results.get("macro", {}).get("gunicorn", {})))
        if "unreachable.png" in pngs:
            lines.append("![unreachable](unreachable.png)\n")
    if results.get("celery"):
        lines += ["## Celery task throughput (Redis broker, one solo worker)", "",
                  f"{p['celery_tasks']} trivial tasks per run sent by a producer process, then "
                  "one whose result it waits for; worker CPU from /proc.", ""]
        lines += celery_table(results["celery"])
    if results.get("micro"):
        lines += ["## Micro workloads", ""] + micro_tables(results["micro"])
    if results.get("failures"):
        lines += ["## What did not run", ""]
        for k, v in results["failures"].items():
            lines.append(f"- {k}: {v}")
        lines.append("")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text)
    return text
