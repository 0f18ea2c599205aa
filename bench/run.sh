#!/usr/bin/env bash
# Builds shortfall and runs the replay benchmark (2M events, 5 runs each pass,
# medians). Usage: bench/run.sh [replay_bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh >/dev/null
exec ./build/bench/replay_bench "$@"
