#!/usr/bin/env bash
# The main job for a new user: installs what the build needs, builds
# shortfall, and runs `shortfall demo`: the whole pipeline on an embedded
# Kafka broker in one process, playing six weeks of seeded cross-border trade
# in which chip imports via Laredo and PPE arrivals collapse. Prints alerts as
# they fire and a closing table of volumes against their baselines.
# Usage: tools/demo.sh [shortfall demo flags]   e.g. --follow, --metrics-bind 127.0.0.1:0
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh >/dev/null
exec ./build/pipeline/shortfall demo "$@"
