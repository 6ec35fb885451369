"""PostgreSQL through psycopg2: a subprocess where psycopg 3 cannot be imported, so that
Django's backend uses psycopg2, runs the shop's queries and reports its spans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _dbhelpers import SECRETS

HERE = Path(__file__).resolve().parent
PROBE = HERE / "_psycopg2_probe.py"


@pytest.fixture(scope="module")
def postgres():
    from support import services

    started = not services.reachable(services.PG_PORT)
    if started:
        services.start("postgres")
    yield
    if started:
        services.stop("postgres")


@pytest.fixture(scope="module")
def probe(postgres):
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_django_used_psycopg2(probe):
    assert probe["psycopg3"] is False
    assert probe["driver_module"].startswith("psycopg2")


def test_spans_through_psycopg2(probe):
    spans = probe["spans"]
    [job] = [s for s in spans if s["name"] == "job"]
    [tx] = [s for s in spans if s["name"] == "transaction"]
    assert tx["parent"] == job["span_id"]
    assert tx["attributes"]["djtrace.db.transaction.outcome"] == "rollback"
    assert tx["status"] == "ERROR"
    dbs = [s for s in spans if s["kind"] == "CLIENT"]
    assert all(s["parent"] in (job["span_id"], tx["span_id"]) for s in dbs)
    first = dbs[0]
    a = first["attributes"]
    assert first["name"] == "SELECT orders"
    assert a["db.system.name"] == "postgresql"
    assert a["db.namespace"] == "postgres"
    assert a["server.address"] == "127.0.0.1"
    assert a["db.response.returned_rows"] == 6
    assert a["code.filepath"] == str(PROBE)
    probe_lines = PROBE.read_text().splitlines()
    assert "probe: loop" in probe_lines[a["code.lineno"] - 1]
    lazy = [s for s in dbs if s["name"] == "SELECT customers"]
    assert len(lazy) == 6
    assert all(s["attributes"]["djtrace.orm.relation"] == "Order.customer" for s in lazy)
    assert "probe: lazy" in probe_lines[lazy[0]["attributes"]["code.lineno"] - 1]
    [many] = [s for s in dbs if s["name"] == "INSERT order_items"
              and "db.operation.batch.size" in s["attributes"]]
    assert many["attributes"]["db.operation.batch.size"] == 4
    [literal] = [s for s in dbs if s["attributes"].get("db.query.text", "").startswith(
        "SELECT count(*)")]
    assert literal["attributes"]["db.query.text"] == (
        "SELECT count(*) FROM orders WHERE reference = ?")
    assert probe["error"] == "ProgrammingError"
    [failed] = [s for s in dbs if s["status"] == "ERROR"]
    assert failed["attributes"]["error.type"] == "django.db.utils.ProgrammingError"
    assert failed["name"] == "SELECT missing"


def test_n_plus_one_through_psycopg2(probe):
    [job] = [s for s in probe["spans"] if s["name"] == "job"]
    assert job["attributes"]["djtrace.n_plus_one.count"] == 1
    [event] = [e for e in job["events"] if e["name"] == "djtrace.n_plus_one"]
    assert event["attributes"]["djtrace.orm.relation"] == "Order.customer"
    assert event["attributes"]["djtrace.n_plus_one.count"] == 6


def test_no_secret_in_psycopg2_spans(probe):
    text = json.dumps(probe["spans"])
    for secret in SECRETS:
        assert secret not in text
