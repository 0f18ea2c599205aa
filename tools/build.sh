#!/usr/bin/env bash
# Builds shortfall (and its tests and benchmarks) into build/ with warnings as
# errors. Installs the Debian packages it needs first (tools/install-deps.sh).
# Usage: tools/build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHORTFALL_WERROR=ON "$@"
cmake --build build -j "$JOBS"
