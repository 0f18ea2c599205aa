#!/usr/bin/env bash
# Installs the Debian packages that building and testing shortfall needs.
# Idempotent: packages already present are not downloaded again, and the apt
# index is refreshed only when a package is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ ccache pkg-config git ca-certificates
  # libraries
  libprotobuf-dev protobuf-compiler librocksdb-dev
  # tests, fuzzing, benchmarks
  libgtest-dev libgmock-dev clang libclang-rt-14-dev python3
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
