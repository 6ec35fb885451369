#!/usr/bin/env bash
# Installs what djtrace needs on a fresh Debian machine, then builds and installs djtrace into
# .venv. Safe to run again: it installs only what is missing and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential pkg-config cmake ninja-build    # native build
  libgtest-dev libgmock-dev                       # GoogleTest
  zlib1g-dev libssl-dev libnghttp2-dev            # gzip, TLS, HTTP/2 (gRPC)
  clang libclang-rt-14-dev                        # libFuzzer
  redis-server postgresql postgresql-contrib      # servers for integration tests
  mariadb-server libmariadb-dev                   # MySQL tests: server, mysqlclient's build
  python3-dev
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Build tools first, then djtrace with its test dependencies (no build isolation: the build
# tools are already in the environment, and the build directory is reused between runs).
# setuptools and wheel build the dependencies that come as source only (uWSGI): a new venv's
# setuptools has no bdist_wheel of its own.
.venv/bin/python -m pip install -q --disable-pip-version-check \
  "scikit-build-core>=0.10" "nanobind>=3.1" ninja cmake "setuptools>=70.1" wheel
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation \
  -r requirements/test.txt

# djtrace itself, from its wheel: profile-guided by default (scripts/build_wheel.sh says how;
# DJTRACE_PGO=0 builds plainly), the wheel that deployments install too.
wheel=$(bash scripts/build_wheel.sh --python .venv/bin/python --out build/dist | tail -n 1)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
  "$wheel"
echo "bootstrap: djtrace $(.venv/bin/python -c 'import djtrace; print(djtrace.__version__)') installed in .venv"
