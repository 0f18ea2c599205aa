#!/usr/bin/env bash
# The main job for a new user: builds shortfall, generates four weeks of
# seeded cross-border trade (shipments and customs events on seven corridors,
# with a few malformed and late records), and replays it through the
# operators, printing daily rolling volumes per commodity group and corridor
# and a final table.
# Usage: tools/demo.sh [events]     (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-300000}
tools/build.sh >/dev/null
mkdir -p build/demo
./build/pipeline/shortfall gen --seed 7 --events "$events" --out build/demo/events.pb
./build/pipeline/shortfall replay --input build/demo/events.pb --print day
