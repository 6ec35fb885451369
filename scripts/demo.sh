#!/usr/bin/env bash
# Sets everything up, then runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python examples/order_service/demo.py "$@"
