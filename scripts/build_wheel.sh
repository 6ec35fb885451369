#!/usr/bin/env bash
# Builds djtrace's wheel, profile-guided by default (GCC): a first build that counts what it
# runs, the order service's scenario run on it (scripts/pgo_train.py, about 20 seconds), then
# the wheel, laid out and inlined for what ran most: djtrace then adds a sixth to a fifth less to
# a traced request (README, "The profile-guided build"). scripts/bootstrap.sh installs this wheel
# into .venv; the order service's Dockerfile builds its image from it.
#
#   bash scripts/build_wheel.sh [--python PYTHON] [--out DIR]
#
# PYTHON (default .venv/bin/python; a name without a slash is looked up in PATH) must hold the
# build tools (scikit-build-core, nanobind, cmake, ninja) and what the training imports
# (opentelemetry-api, and the order service's requirements: examples/order_service/
# requirements.txt). DIR (default build/dist) receives djtrace-*.whl; its path is printed last.
# Relative paths given are taken from the current directory, the defaults from the repository.
# The counts are kept under build/pgo and made again only when the native sources, the build
# files, the training, the compiler or PYTHON's version change; otherwise the wheel's build is
# just brought up to date. DJTRACE_PGO=0 (or no g++) builds a plain wheel.
set -euo pipefail

in_caller_dir() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
python=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python)
      python=${2:?--python needs a value}
      case "$python" in */*) python=$(in_caller_dir "$python") ;; esac  # else a command in PATH
      shift 2 ;;
    --out) out=$(in_caller_dir "${2:?--out needs a value}"); shift 2 ;;
    *) echo "build_wheel: unknown argument $1 (known: --python PYTHON, --out DIR)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
python=${python:-.venv/bin/python}
out=${out:-build/dist}
if ! "$python" -c 'import scikit_build_core, nanobind' 2>/dev/null; then
  echo "build_wheel: --python $python: not an interpreter with scikit-build-core and nanobind" >&2
  exit 2
fi

pip=("$python" -m pip --disable-pip-version-check -q)
# No build isolation: the build tools are already in PYTHON's environment, and the build
# directory is reused between runs.
build_opts=(--no-build-isolation --no-deps)
staging="$PWD/build/wheel-staging"
rm -rf "$staging"
if [ "${DJTRACE_PGO:-1}" != "0" ] && command -v g++ >/dev/null 2>&1; then
  pgo_root="$PWD/build/pgo"
  pgo_build=(--config-settings=build-dir="$pgo_root/build"
             --config-settings=cmake.define.DJTRACE_PGO_DIR="$pgo_root/profile")
  # The counts are named after the object files' absolute paths: a moved checkout trains again.
  pgo_stamp=$( { echo "$PWD"; g++ --version | head -1; "$python" -V;
                 find native CMakeLists.txt pyproject.toml scripts/pgo_train.py \
                   examples/order_service -type f \( -name '*.cc' -o -name '*.h' \
                   -o -name '*.c' -o -name 'CMakeLists.txt' -o -name '*.toml' -o -name '*.py' \
                   -o -name '*.html' \) \
                   -not -path '*/__pycache__/*' -not -path '*/var/*' -print0 |
                 sort -z | xargs -0 sha256sum; } |
               sha256sum | cut -d' ' -f1)
  if [ ! -d "$pgo_root/profile" ] || [ "$(cat "$pgo_root/stamp" 2>/dev/null)" != "$pgo_stamp" ]
  then
    echo "build_wheel: profile-guided build: counting build, training run, final build" >&2
    rm -rf "$pgo_root/profile" "$pgo_root/instrumented" "$pgo_root/stamp"
    "${pip[@]}" install "${build_opts[@]}" --target "$pgo_root/instrumented" "${pgo_build[@]}" \
      --config-settings=cmake.define.DJTRACE_PGO=generate .
    PYTHONPATH="$pgo_root/instrumented" "$python" scripts/pgo_train.py >/dev/null
    if ! compgen -G "$pgo_root/profile/*.gcda" >/dev/null; then
      echo "build_wheel: the training run wrote no counts into $pgo_root/profile" >&2
      exit 1
    fi
    rm -rf "$pgo_root/instrumented"
  fi
  "${pip[@]}" wheel "${build_opts[@]}" -w "$staging" "${pgo_build[@]}" \
    --config-settings=cmake.define.DJTRACE_PGO=use .
  echo "$pgo_stamp" > "$pgo_root/stamp"
else
  "${pip[@]}" wheel "${build_opts[@]}" -w "$staging" \
    --config-settings=cmake.define.DJTRACE_PGO= .
fi

wheels=("$staging"/djtrace-*.whl)
mkdir -p "$out"
cp "${wheels[@]}" "$out"/
rm -rf "$staging"
echo "$out/$(basename "${wheels[0]}")"
