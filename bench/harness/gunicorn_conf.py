"""Gunicorn configuration of the benchmark: the guide's sync workers, without its access log
(it would measure the log, not the tracer) and without max_requests (a worker restarting in the
middle of a run would measure its start-up). The official stack is initialised in on_starting,
as the guide's gunicorn.conf.py does; djtrace and ddtrace start in each worker with the app."""

import os

bind = os.environ["BENCH_BIND"]
workers = int(os.environ.get("BENCH_WORKERS", "2"))
worker_class = "sync"
backlog = 2048
timeout = 60
graceful_timeout = 5
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = "warning"
proc_name = "djtrace-bench-" + os.environ.get("BENCH_CONFIG", "untraced")


def on_starting(server):
    from harness import stacks

    if stacks.kind() == "otel":
        stacks.official_init()
