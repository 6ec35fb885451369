"""Management commands: a root span per command, through call_command and manage.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from opentelemetry.trace import SpanKind, StatusCode
from support.otlp_receiver import OtlpHttpReceiver

from ._helpers import unmask

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.django_db


def test_call_command_gets_a_root_span(spans):
    call_command("process_things", "a", "b", limit=3, api_token="s3cret-value", verbosity=0)
    root = spans.one("manage.py process_things")
    assert root.parent is None
    assert root.kind is SpanKind.INTERNAL
    a = root.attributes
    assert a["djtrace.command.name"] == "process_things"
    assert unmask(a["djtrace.command.options"]) == (
        "api_token=REDACTED", "dry_run=False", "limit=3", "names=a,b")
    assert a["process.exit.code"] == 0
    assert root.status.status_code is StatusCode.UNSET
    assert "s3cret-value" not in str(dict(a))
    # Everything it did nests under it.
    children = [s.name for s in spans.children(root)]
    assert children[:2] == ["cache.set", "cache.get"]
    assert "render web/page.html" in children
    for span in spans.spans:
        assert span.context.trace_id == root.context.trace_id


def test_command_error_sets_the_exit_code(spans):
    with pytest.raises(CommandError):
        call_command("fail_command")
    span = spans.one("manage.py fail_command")
    assert span.attributes["process.exit.code"] == 3
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "django.core.management.base.CommandError"
    assert [e.attributes["exception.message"] for e in span.events] == ["nothing to do"]


def test_crashing_command_records_the_exception(spans):
    with pytest.raises(RuntimeError):
        call_command("fail_command", crash=True)
    span = spans.one("manage.py fail_command")
    assert span.attributes["process.exit.code"] == 1
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].attributes["exception.type"] == "RuntimeError"


def test_excluded_commands_get_no_span(spans):
    with override_settings(DJTRACE={"excluded_commands": ["process_things"]}):
        call_command("process_things", verbosity=0)
    assert spans.by_name("manage.py process_things") == []
    # What it did is still traced, as roots of their own.
    assert spans.by_name("cache.get")


def test_command_spans_can_be_switched_off(spans):
    with override_settings(DJTRACE={"command_spans": False}):
        call_command("process_things", verbosity=0)
    assert spans.by_name("manage.py process_things") == []


def test_django_commands_are_traced_too(spans):
    call_command("check", verbosity=0)
    assert spans.one("manage.py check").attributes["process.exit.code"] == 0


def test_call_command_inside_a_request_is_a_child(spans):
    Client().get("/run-command/")
    command = spans.one("manage.py process_things")
    assert spans.parent_of(command).name == "run_command"
    request = spans.one("GET run-command/")
    assert request.parent is None
    # The command is part of the request's root: its query counts there.
    assert request.attributes["djtrace.db.query_count"] == 1
    assert "djtrace.db.query_count" not in command.attributes


def test_cache_repeats_are_reported_on_the_command_span(spans):
    from django.core.cache import cache
    from django.core.management.base import BaseCommand

    class Command(BaseCommand):
        def handle(self, *args, **options):
            for _ in range(5):
                cache.get("config:flag")

    Command._djtrace_name = "inline"
    call_command(Command())
    span = spans.one("manage.py inline")
    assert span.attributes["djtrace.cache.repeated_get_count"] == 4
    [event] = [e for e in span.events if e.name == "djtrace.cache.repeated_get"]
    assert event.attributes["djtrace.cache.get_count"] == 5


def _notes_fixture(tmp_path: Path, n: int) -> Path:
    fixture = tmp_path / "notes.json"
    fixture.write_text(json.dumps([{"model": "web.note", "pk": 1000 + i,
                                    "fields": {"title": f"fixture note {i}"}} for i in range(n)]))
    return fixture


@override_settings(DJTRACE={"n_plus_one_strict": True, "n_plus_one_warn": True})
def test_django_commands_are_counted_but_not_checked_for_n_plus_one(spans, tmp_path, caplog):
    # loaddata saves each object with the same statements, from Django's code: repetition the
    # project cannot change, which strict mode must not turn into a failure (as it would for
    # migrate while the test database is created).
    call_command("loaddata", str(_notes_fixture(tmp_path, 6)), verbosity=0)
    span = spans.one("manage.py loaddata")
    assert span.attributes["djtrace.db.query_count"] >= 6
    assert span.attributes["djtrace.n_plus_one.count"] == 0
    assert [e for e in span.events if e.name == "djtrace.n_plus_one"] == []
    assert [r for r in caplog.records if r.name == "djtrace.n_plus_one"] == []


@override_settings(DJTRACE={"n_plus_one_strict": True})
def test_django_commands_inside_a_traced_operation_count_on_their_own_span(spans, tmp_path):
    # loaddata called from a test's span: its repeated statements come from one line of the
    # test, and in the span's root they would be taken for the test's own N+1.
    from opentelemetry import trace
    from project.web.models import Note

    with trace.get_tracer("tests").start_as_current_span("setup") as setup:
        Note.objects.count()
        call_command("loaddata", str(_notes_fixture(tmp_path, 6)), verbosity=0)
        Note.objects.count()
    command = spans.one("manage.py loaddata")
    assert command.parent.span_id == setup.get_span_context().span_id
    assert command.attributes["djtrace.db.query_count"] >= 6
    assert command.attributes["djtrace.n_plus_one.count"] == 0
    assert spans.one("setup").attributes["djtrace.db.query_count"] == 2


@override_settings(DJTRACE={"n_plus_one_strict": True})
def test_the_projects_own_commands_are_checked_for_n_plus_one(spans, tmp_path):
    from django.core.management.base import BaseCommand

    from djtrace.integrations.django import db

    fixture = str(_notes_fixture(tmp_path, 6))

    class Command(BaseCommand):  # defined here, in the project's code
        def handle(self, *args, **options):
            from project.web.models import Note

            for pk in range(1000, 1006):
                Note.objects.filter(pk=pk).exists()

    Command._djtrace_name = "own_loop"
    call_command("loaddata", fixture, verbosity=0)
    with pytest.raises(db.NPlusOneError) as info:
        call_command(Command())
    assert "test_commands.py" in str(info.value)
    assert spans.one("manage.py own_loop").attributes["djtrace.n_plus_one.count"] == 1


def test_which_commands_are_the_projects():
    from django.core.management import load_command_class

    from djtrace.integrations.django.commands import is_project_command

    assert not is_project_command(load_command_class("django.core", "migrate"))
    assert not is_project_command(load_command_class("django.contrib.auth", "createsuperuser"))
    assert not is_project_command(load_command_class("rest_framework", "generateschema"))
    assert is_project_command(load_command_class("project.web", "process_things"))


# -- real processes --------------------------------------------------------------------------

def _env(receiver: OtlpHttpReceiver, tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJTRACE_TEST_DB": "sqlite",
        "DJTRACE_TEST_SQLITE": str(tmp_path / "sub.sqlite3"),
        "DJTRACE_TEST_EXPORTERS": "otlp",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        # A long delay: only the flush at the end of the command can send the spans in time.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    })
    env.update(extra)
    return env


def _tree(received) -> dict:
    by_id = {span.span_id: span for _, _, span in received}
    return by_id


def test_manage_py_command_spans_reach_the_receiver_before_exit(tmp_path):
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run(
            [sys.executable, "manage.py", "process_things", "x", "--limit", "7",
             "--api-token", "tok-123456"],
            cwd=str(HERE), env=_env(receiver, tmp_path), capture_output=True, text=True,
            timeout=120)
        assert result.returncode == 0, result.stderr
        assert "processed 1" in result.stdout
        # The process has exited: everything must already be at the receiver.
        received = receiver.received.spans()
    names = [span.name for _, _, span in received]
    assert "manage.py process_things" in names, names
    root = next(s for _, _, s in received if s.name == "manage.py process_things")
    assert root.parent_span_id == b""
    attrs = {kv.key: kv.value for kv in root.attributes}
    assert attrs["djtrace.command.name"].string_value == "process_things"
    options = [v.string_value for v in attrs["djtrace.command.options"].array_value.values]
    assert unmask(options) == ["api_token=REDACTED", "dry_run=False", "limit=7", "names=x"]
    assert attrs["process.exit.code"].int_value == 0
    children = [s.name for _, _, s in received if s.parent_span_id == root.span_id]
    assert "cache.set" in children and "render web/page.html" in children
    assert all(s.trace_id == root.trace_id for _, _, s in received)
    # No span carries the secret (the resource's process.command_args is the SDK's, and is
    # left to the export path's redaction).
    assert "tok-123456" not in str([s for _, _, s in received])
    resources = {kv.key: kv.value.string_value for r, _, _ in received for kv in r.attributes}
    assert resources["service.name"] == "djtrace-django-tests"


def test_manage_py_failing_command(tmp_path):
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, "manage.py", "fail_command"], cwd=str(HERE),
                                env=_env(receiver, tmp_path), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 3
        received = receiver.received.spans()
    span = next(s for _, _, s in received if s.name == "manage.py fail_command")
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["process.exit.code"].int_value == 3
    assert span.status.code == 2  # STATUS_CODE_ERROR


def test_strict_mode_lets_manage_py_migrate_and_the_test_database_be_made(tmp_path):
    # A fresh database: migrate repeats its statements (one per migration recorded, tables
    # rebuilt), from Django's code under manage.py's main(). Strict mode is for the project's
    # queries; these must neither fail the command nor, in a test run, the test database.
    with OtlpHttpReceiver() as receiver:
        env = _env(receiver, tmp_path, DJTRACE_TEST_N_PLUS_ONE_STRICT="1")
        migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"],
                                 cwd=str(HERE), env=env, capture_output=True, text=True,
                                 timeout=300)
        assert migrate.returncode == 0, migrate.stderr
        assert "N+1" not in migrate.stderr
        test_db = subprocess.run(
            [sys.executable, "-c",
             "import django; django.setup()\n"
             "from django.test.runner import DiscoverRunner\n"
             "runner = DiscoverRunner(verbosity=0)\n"
             "runner.teardown_databases(runner.setup_databases())\n"
             "print('test database made')"],
            cwd=str(HERE), env=env, capture_output=True, text=True, timeout=300)
        assert test_db.returncode == 0, test_db.stderr
        assert "test database made" in test_db.stdout
        received = receiver.received.spans()
    migrate_span = next(s for _, _, s in received if s.name == "manage.py migrate")
    attrs = {kv.key: kv.value for kv in migrate_span.attributes}
    assert attrs["djtrace.db.query_count"].int_value > 20
    assert attrs["djtrace.n_plus_one.count"].int_value == 0


def test_manage_py_does_not_wait_to_retry_a_failing_collector(tmp_path):
    # A collector answering "503 retry later" to everything: the command's flush before exit
    # tries once instead of retrying until the export timeout.
    with OtlpHttpReceiver(responses=[503] * 50) as receiver:
        result = subprocess.run(
            [sys.executable, "manage.py", "process_things", "x"], cwd=str(HERE),
            env=_env(receiver, tmp_path, OTEL_EXPORTER_OTLP_TIMEOUT="60000"),
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert receiver.attempts == 1
    assert "(1 attempt; not retried: the process is exiting)" in result.stderr, result.stderr


def test_manage_py_with_no_collector_listening_exits_without_retrying(tmp_path):
    nobody = SimpleNamespace(endpoint=f"http://127.0.0.1:{_free_port()}/v1/traces")
    env = _env(nobody, tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "process_things", "x"], cwd=str(HERE),
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Connection refused) (1 attempt; not retried: the process is exiting)" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runserver_is_excluded_but_its_requests_are_traced(tmp_path):
    port = _free_port()
    with OtlpHttpReceiver() as receiver:
        env = _env(receiver, tmp_path, OTEL_BSP_SCHEDULE_DELAY="50")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{port}"], cwd=str(HERE), env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/plain/",
                                                timeout=5) as r:
                        assert r.read() == b"plain"
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.2)
            # Wait for the request's span by name: start-up queries export spans of their own.
            deadline = time.time() + 20
            while time.time() < deadline and "GET plain/" not in [
                    s.name for _, _, s in receiver.received.spans()]:
                time.sleep(0.05)
            spans = receiver.received.spans()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        names = [s.name for _, _, s in receiver.received.spans()]
    assert "GET plain/" in names, names
    assert not [n for n in names if n.startswith("manage.py")]
    assert spans
