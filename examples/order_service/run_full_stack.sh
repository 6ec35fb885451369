#!/usr/bin/env bash
# The order service on the full stack: PostgreSQL and Redis (scripts/services.sh, loopback),
# Gunicorn with gunicorn.conf.py (2 workers, --preload), Celery prefork worker and beat, spans
# exported over OTLP to $OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318).
#
#   bash examples/order_service/run_full_stack.sh [--port 8000] [--no-beat] [--no-seed]
#
# Without a collector at hand, print the spans instead:
#   OTEL_TRACES_EXPORTER=console bash examples/order_service/run_full_stack.sh
# or send them to any OTLP backend, e.g. Jaeger on this machine:
#   docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:latest
#   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 bash examples/order_service/run_full_stack.sh
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || { echo "no Python at $PYTHON: run scripts/bootstrap.sh first"; exit 1; }
exec "$PYTHON" fullstack.py "$@"
