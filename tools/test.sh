#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds with warnings as
# errors, runs every GoogleTest and end-to-end test with ctest, then builds
# the libFuzzer targets with clang and runs each over its corpus.
# Usage: tools/test.sh            (from anywhere; needs root or sudo for apt)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

tools/build.sh
(cd build && ctest --output-on-failure -j "$JOBS")

# Fuzzers: their own tree, clang with sanitizers and coverage instrumentation.
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHORTFALL_FUZZ=ON -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
cmake --build build-fuzz -j "$JOBS"
(cd build-fuzz && ctest --output-on-failure)
