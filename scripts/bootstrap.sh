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

# djtrace itself. By default a profile-guided build (GCC): a first build that counts what it
# runs, the order service's scenario run on it (scripts/pgo_train.py, about 20 seconds), then
# the build that .venv gets, laid out and inlined for what ran most: djtrace then adds a sixth to
# a fifth less to a traced request (README, Performance). The counts are kept under build/pgo
# and made again only when the native sources, the build files, the training or the compiler
# change; otherwise the second build is just brought up to date. DJTRACE_PGO=0 builds plainly.
pip_install=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation
             --no-deps)
if [ "${DJTRACE_PGO:-1}" != "0" ] && command -v g++ >/dev/null 2>&1; then
  pgo_root="$PWD/build/pgo"
  pgo_build=(-Cbuild-dir="$pgo_root/build" -Ccmake.define.DJTRACE_PGO_DIR="$pgo_root/profile")
  # The counts are named after the object files' absolute paths: a moved checkout trains again.
  pgo_stamp=$( { echo "$PWD"; g++ --version | head -1; .venv/bin/python -V;
                 find native CMakeLists.txt pyproject.toml scripts/pgo_train.py \
                   examples/order_service -type f \( -name '*.cc' -o -name '*.h' \
                   -o -name '*.c' -o -name 'CMakeLists.txt' -o -name '*.toml' -o -name '*.py' \
                   -o -name '*.html' \) \
                   -not -path '*/__pycache__/*' -not -path '*/var/*' -print0 |
                 sort -z | xargs -0 sha256sum; } |
               sha256sum | cut -d' ' -f1)
  if [ ! -d "$pgo_root/profile" ] || [ "$(cat "$pgo_root/stamp" 2>/dev/null)" != "$pgo_stamp" ]
  then
    echo "bootstrap: profile-guided build of djtrace: counting build, training run, final build"
    rm -rf "$pgo_root/profile" "$pgo_root/instrumented" "$pgo_root/stamp"
    "${pip_install[@]}" --target "$pgo_root/instrumented" "${pgo_build[@]}" \
      -Ccmake.define.DJTRACE_PGO=generate .
    PYTHONPATH="$pgo_root/instrumented" .venv/bin/python scripts/pgo_train.py >/dev/null
    if ! compgen -G "$pgo_root/profile/*.gcda" >/dev/null; then
      echo "bootstrap: the training run wrote no counts into $pgo_root/profile" >&2
      exit 1
    fi
    rm -rf "$pgo_root/instrumented"
  fi
  "${pip_install[@]}" "${pgo_build[@]}" -Ccmake.define.DJTRACE_PGO=use .
  echo "$pgo_stamp" > "$pgo_root/stamp"
else
  "${pip_install[@]}" -Ccmake.define.DJTRACE_PGO= .
fi
echo "bootstrap: djtrace $(.venv/bin/python -c 'import djtrace; print(djtrace.__version__)') installed in .venv"
