#!/bin/sh
# Installs what the build and the tests need and is missing: Debian packages
# (only when run as root; otherwise it says what to install) and a Python
# virtual environment in .venv with the test oracles (pandas, ONNX Runtime)
# and the Python package built from this tree (python/).
set -eu
cd "$(dirname "$0")/.."

packages="build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libhiredis-dev
  libmicrohttpd-dev redis-server python3 python3-venv"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
# A python3 outside Debian's (pyenv, say) needs no python3-venv package.
if command -v python3 >/dev/null 2>&1 && [ "$(command -v python3)" != /usr/bin/python3 ]; then
  missing=$(echo "$missing" | sed 's/ python3-venv//; s/ python3\b//')
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "install-deps: missing Debian packages:$missing"
    echo "install-deps: run as root: apt-get install$missing"
  fi
fi

if [ ! -x .venv/bin/python ] || [ ! -f .venv/.installed ] ||
  [ requirements-test.txt -nt .venv/.installed ]; then
  echo "install-deps: preparing .venv (test oracles: requirements-test.txt)"
  python3 -m venv .venv
  if .venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt; then
    touch .venv/.installed
  else
    echo "install-deps: pip failed; the tests that need pandas or onnxruntime will be skipped"
  fi
fi

# The Python package, rebuilt when its sources or the library's changed
# (CMake rebuilds only what changed, in python/build/).
stamp=.venv/.pattern_engine
if [ -x .venv/bin/python ] && [ -f .venv/.installed ] && { [ ! -f "$stamp" ] ||
  [ -n "$(find python include src CMakeLists.txt -newer "$stamp" -type f \
    ! -path 'python/build/*' ! -name '*.pyc' -print 2>/dev/null | head -n 1)" ]; }; then
  echo "install-deps: building the Python package into .venv (pip install ./python)"
  if .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation \
    --no-deps --config-settings=cmake.define.PE_WERROR=ON ./python; then
    rm -f .venv/.pattern_engine.failed
    touch "$stamp"
  else
    # No stale build is left to be tested in its place.
    .venv/bin/pip uninstall -q -y pattern_engine >/dev/null 2>&1 || true
    touch .venv/.pattern_engine.failed
    echo "install-deps: building the Python package failed; its tests will be skipped"
  fi
fi
