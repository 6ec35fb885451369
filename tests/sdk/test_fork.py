"""Fork safety: a processor configured before fork() works in every child with no hook, the
child exports only its own spans, and ids never repeat across processes. Covers os.fork from
Python, multiprocessing, and a real uWSGI master forking workers from C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

PYTHON = sys.executable


def read_spans(path: Path) -> list[dict]:
    spans = []
    if not path.exists():
        return spans
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        request = json.loads(line)
        for rs in request["resourceSpans"]:
            pid = next(
                (a["value"].get("intValue") for a in rs["resource"]["attributes"]
                 if a["key"] == "process.pid"), None)
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    span["_resource_pid"] = pid
                    spans.append(span)
    return spans


def run_script(code: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path)


def test_os_fork_children_export_their_own_spans(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    result = run_script(f"""
        import os
        from opentelemetry import trace
        from djtrace.sdk import TracerProvider, BatchSpanProcessor, Resource
        from djtrace.sdk.trace.export import OtlpJsonFileSpanExporter

        provider = TracerProvider(resource=Resource.create({{"service.name": "fork",
                                                             "process.pid": os.getpid()}}))
        # A long delay: nothing is exported before the fork, so a child that inherited the
        # parent's queue would export the parent's spans too.
        provider.add_span_processor(BatchSpanProcessor(
            OtlpJsonFileSpanExporter({str(out)!r}), schedule_delay_millis=60000))
        tracer = provider.get_tracer("t")
        for i in range(10):
            with tracer.start_as_current_span(f"parent-before-{{i}}"):
                pass
        children = []
        for c in range(4):
            pid = os.fork()
            if pid == 0:
                for i in range(25):
                    with tracer.start_as_current_span(f"child-{{c}}-{{i}}") as s:
                        s.set_attribute("pid", os.getpid())
                provider.shutdown()
                os._exit(0)
            children.append(pid)
        for i in range(10):
            with tracer.start_as_current_span(f"parent-after-{{i}}"):
                pass
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
        provider.shutdown()
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    spans = read_spans(out)
    names = [s["name"] for s in spans]
    assert sorted(n for n in names if n.startswith("parent")) == sorted(
        [f"parent-before-{i}" for i in range(10)] + [f"parent-after-{i}" for i in range(10)])
    for c in range(4):
        assert sorted(n for n in names if n.startswith(f"child-{c}-")) == sorted(
            f"child-{c}-{i}" for i in range(25))
    assert len(names) == 20 + 100, "a span was lost or exported twice"
    span_ids = [s["spanId"] for s in spans]
    trace_ids = [s["traceId"] for s in spans]
    assert len(set(span_ids)) == len(span_ids)
    assert len(set(trace_ids)) == len(trace_ids)
    # each child's spans carry its own pid, in the span and in the resource's process.pid
    parent_pids = {s["_resource_pid"] for s in spans if s["name"].startswith("parent")}
    assert len(parent_pids) == 1
    for s in spans:
        if s["name"].startswith("child"):
            pid_attr = next(a["value"]["intValue"] for a in s["attributes"] if a["key"] == "pid")
            assert int(pid_attr) != os.getpid()
            assert s["_resource_pid"] == pid_attr
            assert s["_resource_pid"] not in parent_pids


def test_multiprocessing_fork_pool(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    result = run_script(f"""
        import multiprocessing as mp
        from djtrace.sdk import TracerProvider, BatchSpanProcessor
        from djtrace.sdk.trace.export import OtlpJsonFileSpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(
            OtlpJsonFileSpanExporter({str(out)!r}), schedule_delay_millis=50))
        tracer = provider.get_tracer("t")

        def work(i):
            with tracer.start_as_current_span(f"task-{{i}}"):
                pass
            # pool workers never run atexit: flush explicitly, as a task would via our hooks
            return provider.force_flush(5000)

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            with ctx.Pool(2) as pool:
                assert all(pool.map(work, range(40)))
            provider.shutdown()
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(s["name"] for s in read_spans(out))
    assert names == sorted(f"task-{i}" for i in range(40))


def test_exit_flush_exports_everything(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    result = run_script(f"""
        import djtrace
        from opentelemetry import trace
        djtrace.configure(exporters=["file"], file_path={str(out)!r},
                          bsp_schedule_delay_ms=60000)
        tracer = trace.get_tracer("exit")
        for i in range(1000):
            with tracer.start_as_current_span(f"s{{i}}"):
                pass
        # no shutdown(): the interpreter's exit must flush
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_spans(out)) == 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UWSGI = shutil.which("uwsgi", path=os.path.dirname(PYTHON)) or shutil.which("uwsgi")


def test_uwsgi_master_forks_workers_from_c(tmp_path: Path) -> None:
    assert UWSGI, "uwsgi is installed by scripts/bootstrap.sh (requirements/test.txt)"
    out = tmp_path / "spans.jsonl"
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(f"""
        import os
        import djtrace
        from opentelemetry import trace
        # Configured at import, in the master, before uWSGI forks the workers (no lazy-apps,
        # no postfork hook): the native fork handlers must make it work in each worker.
        djtrace.configure(exporters=["file"], file_path={str(out)!r},
                          bsp_schedule_delay_ms=100, service_name="uwsgi-app")
        tracer = trace.get_tracer("app")

        def application(environ, start_response):
            with tracer.start_as_current_span("GET /") as span:
                span.set_attribute("worker.pid", os.getpid())
                with tracer.start_as_current_span("child"):
                    pass
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(os.getpid()).encode()]
    """))
    port = _free_port()
    proc = subprocess.Popen(
        [UWSGI, "--master", "--processes", "2", "--http-socket", f"127.0.0.1:{port}",
         "--wsgi-file", str(app), "--die-on-term", "--disable-logging", "--need-app",
         "--pythonpath", str(tmp_path), "--home", os.path.dirname(os.path.dirname(PYTHON))],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 30
        pids = set()
        served = 0
        while time.time() < deadline and served < 40:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    pids.add(int(r.read()))
                    served += 1
            except OSError:
                time.sleep(0.1)
        assert served == 40, "uWSGI did not serve"
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    # Wait for the workers' flush at exit to land.
    spans = read_spans(out)
    roots = [s for s in spans if s["name"] == "GET /"]
    assert len(roots) == 40, (len(roots), output[-2000:])
    assert len([s for s in spans if s["name"] == "child"]) == 40
    assert len({s["spanId"] for s in spans}) == len(spans)
    worker_pids = {int(a["value"]["intValue"]) for s in roots for a in s["attributes"]
                   if a["key"] == "worker.pid"}
    assert worker_pids == pids
    assert proc.pid not in worker_pids
