"""Fixtures of the Django integration tests.

The test project (project/) is set up before collection; DJTRACE_TEST_DB=postgres (or mysql)
runs the suite against the PostgreSQL (or MariaDB) server of scripts/services.sh, started for
the session and stopped afterwards if this session started it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def pytest_configure(config):
    # pytest-django read DJANGO_SETTINGS_MODULE before this conftest was loaded: load the
    # settings and let it finish its set-up (django.setup() and database blocking). The
    # variable is removed again afterwards (pytest-django then goes by settings.configured),
    # so that other suites' subprocesses (Celery workers, ...) do not inherit this project.
    prior = os.environ.get("DJANGO_SETTINGS_MODULE")
    os.environ["DJANGO_SETTINGS_MODULE"] = prior or "project.settings"
    from django.conf import settings
    from pytest_django.plugin import _setup_django

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings module
        _setup_django(config)
    finally:
        if prior is None:
            del os.environ["DJANGO_SETTINGS_MODULE"]


@pytest.fixture(scope="session", autouse=True)
def _database_server():
    """Starts PostgreSQL or MariaDB when the suite runs against it."""
    from support import services

    server = {"postgres": ("postgres", services.PG_PORT),
              "mysql": ("mariadb", services.MYSQL_PORT)}.get(
        os.environ.get("DJTRACE_TEST_DB", "sqlite"))
    if server is None:
        yield
        return
    name, port = server
    started = not services.reachable(port)
    if started:
        services.start(name)
    yield
    if started:
        services.stop(name)


@pytest.fixture(scope="session")
def django_db_setup(_database_server, django_db_setup):  # noqa: F811 - the server first
    yield


@pytest.fixture(scope="session")
def redis_server():
    """A Redis server on loopback for the cache tests."""
    from support import services

    started = not services.reachable(services.REDIS_PORT)
    if started:
        services.start("redis")
    yield services.redis_url(1)
    if started:
        services.stop("redis")


@pytest.fixture
def spans():
    """The spans that end during the test (djtrace.testing.capture_spans)."""
    from djtrace.testing import capture_spans

    with capture_spans() as captured:
        yield captured


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts with the default cache content, settings and no current span."""
    from django.core.cache import caches
    from opentelemetry import trace

    from djtrace.integrations.django import settings as dj_settings

    dj_settings.reload()
    caches["default"].clear()
    assert trace.get_current_span() is trace.INVALID_SPAN
    yield
    assert trace.get_current_span() is trace.INVALID_SPAN, "a span was left attached"
    dj_settings.reload()
