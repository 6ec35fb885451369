"""The embedded-default demo of the order service, end to end, twice in the same directory (a
second run must work as the first): Gunicorn with two workers, a Celery prefork worker over
the filesystem broker, the fake gateway, the curl scenario and the printed traces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "order_service" / "demo.py"


def section(output: str, title: str) -> str:
    """The text of one titled part of the demo's output (up to the next title)."""
    start = output.index(f"── {title}")
    end = output.find("\n── ", start + 1)
    return output[start:end if end != -1 else None]


def tree_of(output: str, root_name: str) -> str:
    """The first printed tree whose root line starts with `root_name`."""
    match = re.search(rf"^{re.escape(root_name)} \(.*?(?=\n\n|\n── |\Z)", output, re.M | re.S)
    assert match, f"no tree for {root_name!r} in:\n{output}"
    return match.group(0)


def run_demo(var: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO), "--var", str(var)], capture_output=True,
                          text=True, timeout=170)


def test_demo_prints_the_order_trace_with_its_celery_task(tmp_path):
    var = tmp_path / "var"
    for run in (1, 2):
        result = run_demo(var)
        output = result.stdout
        assert result.returncode == 0, f"run {run}:\n{output}\n{result.stderr}"

        post = tree_of(output, "POST api/orders/")
        # The request, its view, the auth query, the insert and the task it enqueued...
        for name in ("OrderViewSet.create", "OrderViewSet.perform_authentication",
                     "SELECT auth_user", "INSERT orders",
                     "send orders.tasks.process_order [PRODUCER]"):
            assert name in post, f"run {run}: {name!r} missing from\n{post}"
        # ...and, in the same tree, the worker running that task.
        consumer = post.index("process orders.tasks.process_order [CONSUMER]")
        worker_part = post[consumer:]
        assert "⟨django-celery-worker⟩" in worker_part.splitlines()[0]
        for name in ("SELECT orders", "validate_high_value_order", "UPDATE orders",
                     "send_confirmation_email"):
            assert name in worker_part, f"run {run}: {name!r} missing from\n{post}"

        n_plus_one = tree_of(output, "GET orders/n-plus-one/bad/")
        assert "⚠ N+1:" in n_plus_one and "Order.user" in n_plus_one
        assert "⚠ N+1:" not in tree_of(output, "GET orders/n-plus-one/good/")

        command = section(output, "The management command")
        assert command.count("process orders.tasks.process_order [CONSUMER]") == 5

        summary = section(output, "Summary")
        assert "probe spans 0" in summary
        assert "the POST's task in its trace: yes" in summary
        assert "personal data leaked none" in summary
        assert re.search(r"N\+1 groups found\s+1\b", summary), summary
        assert re.search(r"PII redactions\s+[1-9]", summary), summary
