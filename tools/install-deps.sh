#!/usr/bin/env bash
# Installs what building and testing shortfall needs: Debian packages, and
# librdkafka >= 2.11 built into third_party/ (tools/build-librdkafka.sh).
# Idempotent: packages already present are not downloaded again, the apt
# index is refreshed only when a package is missing, and a built librdkafka
# is reused. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ ccache pkg-config git ca-certificates
  # libraries
  libprotobuf-dev protobuf-compiler librocksdb-dev libyaml-cpp-dev prometheus-cpp-dev libjemalloc-dev
  # tests, fuzzing, benchmarks
  libgtest-dev libgmock-dev clang libclang-rt-14-dev python3
  # the real Kafka broker of the integration tests (tools/kafka.sh), and kcat to read topics
  openjdk-17-jre-headless maven kcat
  # promtool, and the Prometheus server the metrics tests scrape with
  prometheus
  # offline checks of deploy/ (tests/deploy/check_deploy.py)
  docker-compose python3-yaml
  # headless browser that renders the replay report (tests/e2e/report_render.py)
  chromium
)
# kubectl renders deploy/kubernetes (kustomize); Debian's only when none is installed.
if ! command -v kubectl >/dev/null 2>&1; then packages+=(kubernetes-client); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  echo "install-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# librdkafka >= 2.11 from Debian testing's source package (cached in third_party/).
"$(dirname "$0")/build-librdkafka.sh"
