#!/usr/bin/env bash
# The main job for a new user: builds shortfall, generates four weeks of
# seeded cross-border trade (shipments and customs events on nine corridors,
# with a few malformed and late records), and replays it through the
# operators: daily rolling volumes per commodity group as windows close, then
# the totals per group and corridor and the count of records by outcome.
# Usage: tools/demo.sh [events]     (default 100000, about four weeks)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
tools/build.sh >/dev/null
mkdir -p build/demo
./build/pipeline/shortfall gen --seed 7 --events "$events" --out build/demo/events.pb
./build/pipeline/shortfall replay --input build/demo/events.pb --print day --series groups
