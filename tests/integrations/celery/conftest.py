"""Real Celery workers (separate processes started here), the real Redis as broker and result
backend, and a real OTLP/HTTP receiver that the workers export to. The test process is the
producer: its spans go to an in-memory exporter on the global provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from djtrace_celery_workers import BROKER, Worker  # noqa: E402
from support import services  # noqa: E402
from support.otlp_receiver import OtlpHttpReceiver  # noqa: E402
from support.spans import global_memory_exporter, redis_running  # noqa: E402

os.environ.setdefault("DJTRACE_TEST_BROKER", BROKER)


@pytest.fixture(scope="session")
def redis_server():
    was_running = redis_running(services.REDIS_PORT)
    services.start("redis")
    yield services.REDIS_PORT
    if not was_running:
        services.stop("redis")


@pytest.fixture(scope="session")
def memory():
    return global_memory_exporter()


@pytest.fixture(scope="session")
def tasks(redis_server, memory):
    """The test app module, imported after the provider is installed (instrument() then keeps
    it rather than configuring its own)."""
    import djtrace_test_tasks

    return djtrace_test_tasks


@pytest.fixture
def start_worker(tmp_path, redis_server, tasks):
    """Starts workers for one test; every one is stopped (or killed) at the end."""
    workers: list[Worker] = []

    def start(receiver: OtlpHttpReceiver, **kwargs) -> Worker:
        worker = Worker(tmp_path, receiver, **kwargs)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        try:
            worker.stop()
        except AssertionError:
            worker.kill()


@pytest.fixture(scope="module")
def shared_receiver():
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def shared_worker(tmp_path_factory, shared_receiver, redis_server, tasks):
    """One prefork worker (concurrency 2) for the tests that only need a worker running."""
    worker = Worker(tmp_path_factory.mktemp("shared-worker"), shared_receiver).start()
    yield worker
    try:
        worker.stop()
    except AssertionError:
        worker.kill()
