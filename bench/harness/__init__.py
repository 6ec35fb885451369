"""The side-by-side benchmark harness behind `make bench` (bench/run.py): tracing set-ups per
configuration, the server entry points, the load generator, the workloads and the report."""
