from __future__ import annotations

import pytest
from support import services
from support.spans import global_memory_exporter, redis_running


@pytest.fixture(scope="session")
def redis_server():
    was_running = redis_running(services.REDIS_PORT)
    services.start("redis")
    yield services.REDIS_PORT
    if not was_running:
        services.stop("redis")


@pytest.fixture
def memory():
    exporter = global_memory_exporter()
    from djtrace.integrations import redis as redis_integration

    redis_integration.install()
    exporter.clear()
    yield exporter
    exporter.clear()
