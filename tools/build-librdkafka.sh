#!/usr/bin/env bash
# Builds librdkafka >= 2.11 (C and C++ libraries, headers, rdkafka.pc and
# rdkafka++.pc) from Debian's *testing* source package into the git-ignored
# prefix third_party/librdkafka/, for the Kafka runtime and its tests.
#
# Why: Debian 12 ships librdkafka 2.0.2, which cannot join consumer groups on
# Kafka 4 brokers (KIP-896 removed JoinGroup v0; librdkafka issue #4948,
# fixed in 2.11.0).
#
# How:
#   * The source is fetched with `apt-get source` in a PRIVATE apt state (its
#     own sources, lists, cache and status in a temp dir), so the machine's apt
#     sources and state are never touched. The mirror URI is taken from the
#     machine's own apt sources; only the type (deb-src) and suite (testing)
#     change. Signatures are verified with the Debian archive keyring.
#   * The upstream tarball is built with its own mklove ./configure, without
#     Debian's patches: those only unvendor cJSON/nanopb/opentelemetry-proto
#     and need Debian-testing-only build deps; the vendored copies are used.
#     configure never downloads anything (--no-download, no --install-deps).
#   * Missing Debian 12 build deps are installed with apt-get (needs root or
#     sudo); apt-get update runs only when something must be installed.
#
# Idempotent: if third_party/librdkafka/lib/pkgconfig/rdkafka++.pc already has
# a version >= 2.11 it prints that version and exits. --force rebuilds.
# Use the result with:
#   PKG_CONFIG_PATH=<repo>/third_party/librdkafka/lib/pkgconfig
set -euo pipefail

MIN_VERSION=2.11
SRC_PACKAGE=librdkafka
SUITE=testing
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
third_party="$repo_root/third_party"
prefix="$third_party/librdkafka"
pcdir="$prefix/lib/pkgconfig"

log() { echo "build-librdkafka: $*"; }
die() { echo "build-librdkafka: ERROR: $*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (usage: $0 [--force])" ;;
  esac
done

# Prints the installed rdkafka++ version if the prefix holds a usable
# librdkafka >= MIN_VERSION; returns non-zero otherwise.
installed_version() {
  [ -f "$pcdir/rdkafka++.pc" ] && [ -f "$pcdir/rdkafka.pc" ] || return 1
  command -v pkg-config >/dev/null 2>&1 || return 1
  local v
  v="$(PKG_CONFIG_PATH="$pcdir" pkg-config --modversion rdkafka++ 2>/dev/null)" || return 1
  [ -n "$v" ] || return 1
  dpkg --compare-versions "$v" ge "$MIN_VERSION" || return 1
  ls "$prefix"/lib/librdkafka++.so* >/dev/null 2>&1 || return 1
  echo "$v"
}

if [ "$force" -eq 0 ] && v="$(installed_version)"; then
  log "librdkafka $v already installed in $prefix (cached; --force to rebuild)"
  log "use: PKG_CONFIG_PATH=$pcdir"
  exit 0
fi

# ---------------------------------------------------------------------------
# From here on: report which step failed.
step="start"
work=""
ok=0
on_exit() {
  local rc=$?
  if [ "$ok" -ne 1 ]; then
    echo "build-librdkafka: ERROR: step '$step' failed (exit $rc)" >&2
    if [ -n "$work" ] && [ -d "$work" ]; then
      echo "build-librdkafka: work dir kept for inspection: $work" >&2
    fi
  elif [ -n "$work" ]; then
    rm -rf "$work"
  fi
}
trap on_exit EXIT
begin() { step="$1"; log "== $1"; }
# Runs a command with its output in a log file; shows the tail on failure.
run_logged() {
  local logfile="$1"; shift
  if ! "$@" >"$logfile" 2>&1; then
    echo "build-librdkafka: --- last lines of $logfile:" >&2
    tail -n 40 "$logfile" >&2
    return 1
  fi
}

mkdir -p "$third_party"

# One build at a time per checkout.
begin "lock"
exec 9>"$third_party/.librdkafka.lock"
if ! flock -n 9; then
  log "another build-librdkafka is running; waiting for it"
  flock 9
fi
if [ "$force" -eq 0 ] && v="$(installed_version)"; then
  log "librdkafka $v was installed by a concurrent run"
  ok=1; exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# ---------------------------------------------------------------------------
begin "install build dependencies"
packages=(
  dpkg-dev build-essential python3 pkg-config debian-archive-keyring
  libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  log "all ${#packages[@]} build dependencies present"
else
  log "installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q \
    --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
fi
[ -r "$KEYRING" ] || die "Debian archive keyring $KEYRING not found"

# ---------------------------------------------------------------------------
begin "find the Debian mirror in the machine's apt sources"
codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
# Prints "<uri> <suite>" for every enabled 'deb' entry.
list_deb_entries() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
          nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (U[i] != "" && S[j] != "") print U[i], S[j]
        }
        types = uris = suites = enabled = ""; key = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { val = $0; sub(/^[ \t]+/, "", val)
                 if (key == "types") types = types " " val
                 else if (key == "uris") uris = uris " " val
                 else if (key == "suites") suites = suites " " val
                 next }
      { k = $0; sub(/:.*/, "", k); k = tolower(k)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val); key = k
        if (k == "types") types = val
        else if (k == "uris") uris = val
        else if (k == "suites") suites = val
        else if (k == "enabled") enabled = val }
      END { flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
      awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
  done
}
entries="$(list_deb_entries)"
# Prefer the entries of the release's main suite (not -security/-updates).
uris="$(awk -v c="$codename" '$2 == c || $2 == "stable" { print $1 }' <<<"$entries" | awk '!seen[$0]++')"
if [ -z "$uris" ]; then
  uris="$(awk '$2 !~ /(-security|\/updates)$/ { print $1 }' <<<"$entries" | awk '!seen[$0]++')"
fi
[ -n "$uris" ] || die "no 'deb' entry found in /etc/apt/sources.list or /etc/apt/sources.list.d/ (need the Debian mirror URI)"
uris="$(tr '\n' ' ' <<<"$uris" | sed 's/ *$//')"
log "mirror: $uris (suite $SUITE, type deb-src)"

# ---------------------------------------------------------------------------
begin "prepare private apt state"
work="$(mktemp -d "${TMPDIR:-/tmp}/build-librdkafka.XXXXXX")"
chmod 755 "$work"   # lets apt's _apt sandbox user reach the download dirs
apt_dir="$work/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/preferences.d" \
         "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/state/status"
cat >"$apt_dir/sources.list.d/$SUITE-src.sources" <<EOF
Types: deb-src
URIs: $uris
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
# Hooks of the system's apt.conf.d (appstream, packagekit) must not run for
# the private index update. '#clear' is only possible in a config file.
cat >"$apt_dir/no-hooks.conf" <<'EOF'
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
EOF
apt_opts=(
  -c "$apt_dir/no-hooks.conf"
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
  -o "Dir::State=$apt_dir/state"
  -o "Dir::State::status=$apt_dir/state/status"
  -o "Dir::Cache=$apt_dir/cache"
)

begin "apt-get update (private state, $SUITE deb-src)"
run_logged "$work/apt-update.log" apt-get "${apt_opts[@]}" update
grep -E '^(W|E):' "$work/apt-update.log" >&2 || true
# apt-get update can exit 0 after a failed fetch or signature check.
if grep -qE '^E:|^W:.*(GPG|NO_PUBKEY|[Ss]ignature|not signed|Failed to fetch)' "$work/apt-update.log"; then
  die "apt-get update of the private $SUITE deb-src index failed (see above)"
fi

begin "apt-get source $SRC_PACKAGE ($SUITE)"
src_version="$(apt-cache "${apt_opts[@]}" showsrc "$SRC_PACKAGE" | awk '/^Version:/ { print $2; exit }')"
[ -n "$src_version" ] || die "source package $SRC_PACKAGE not found in Debian $SUITE"
upstream_version="${src_version#*:}"; upstream_version="${upstream_version%-*}"
dpkg --compare-versions "$upstream_version" ge "$MIN_VERSION" ||
  die "Debian $SUITE has $SRC_PACKAGE $src_version, older than $MIN_VERSION"
log "Debian $SUITE has $SRC_PACKAGE $src_version"
dl="$work/src"
mkdir -p "$dl"
if [ "$(id -u)" -eq 0 ] && getent passwd _apt >/dev/null; then chown _apt "$dl"; fi
(cd "$dl" && run_logged "$work/apt-source.log" \
  apt-get "${apt_opts[@]}" source --download-only "$SRC_PACKAGE=$src_version")
dsc="$(ls "$dl"/*.dsc)"

begin "unpack source (dpkg-source, upstream tarball without Debian patches)"
# Debian's patches switch to external cJSON/nanopb and regenerated
# opentelemetry-proto files, which Debian 12 cannot provide; upstream vendors them.
run_logged "$work/dpkg-source.log" dpkg-source -x --skip-patches "$dsc" "$work/librdkafka"
cd "$work/librdkafka"

begin "configure"
# --enable-X makes the feature mandatory (fail instead of silently dropping it).
# No --install-deps: configure must not fetch anything; --no-download: nor
# mklove modules.
run_logged "$work/configure.log" ./configure \
  --prefix="$prefix" \
  --no-download \
  --enable-ssl --enable-gssapi --enable-zstd --enable-zlib \
  --enable-lz4-ext --enable-curl \
  --LDFLAGS="-Wl,-rpath,$prefix/lib"
log "configured: $(awk '$1 == "BUILT_WITH" { $1 = ""; print; exit }' "$work/configure.log")"

begin "make (libs, -j$(nproc), nice)"
run_logged "$work/make.log" nice -n 10 make -j"$(nproc)" libs

begin "make install"
stage="$work/stage"
run_logged "$work/install.log" make install DESTDIR="$stage"
[ -f "$stage$pcdir/rdkafka++.pc" ] || die "make install did not produce rdkafka++.pc"
rm -f "$stage$prefix"/lib/*.a "$stage$pcdir"/*-static.pc
# Replace the prefix in one step, so a half-installed tree never looks cached.
rm -rf "$prefix.new"
cp -a "$stage$prefix" "$prefix.new"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"

begin "check installed version"
v="$(installed_version)" || die "installed prefix $prefix is unusable (rdkafka++.pc missing or version < $MIN_VERSION)"
log "installed librdkafka $v into $prefix"

# ---------------------------------------------------------------------------
begin "verify: compile and run a program against rdkafka++ via pkg-config"
check_dir="$(mktemp -d "${TMPDIR:-/tmp}/librdkafka-check.XXXXXX")"
cat >"$check_dir/check.cpp" <<'EOF'
#include <librdkafka/rdkafkacpp.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <cstdio>
#include <memory>
#include <string>

struct Dr : RdKafka::DeliveryReportCb {
  int delivered = 0;
  void dr_cb(RdKafka::Message &m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) delivered++;
    else std::fprintf(stderr, "delivery failed: %s\n", m.errstr().c_str());
  }
};

int main() {
  std::printf("RdKafka::version_str(): %s\n", RdKafka::version_str().c_str());
  char err[512];
  // This handle only owns the mock cluster: no bootstrap.servers, so keep
  // its "no bootstrap.servers" notice quiet.
  rd_kafka_conf_t *mconf = rd_kafka_conf_new();
  rd_kafka_conf_set(mconf, "log_level", "4", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof err);
  if (!rk) { std::fprintf(stderr, "rd_kafka_new: %s\n", err); return 1; }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 3);
  if (!mc) { std::fprintf(stderr, "rd_kafka_mock_cluster_new failed\n"); return 1; }
  const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
  std::printf("mock cluster bootstrap servers: %s\n", bootstraps);
  rd_kafka_mock_topic_create(mc, "check", 1, 3);

  std::string errstr, features;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  Dr dr;
  if (conf->set("bootstrap.servers", bootstraps, errstr) != RdKafka::Conf::CONF_OK ||
      conf->set("dr_cb", &dr, errstr) != RdKafka::Conf::CONF_OK) {
    std::fprintf(stderr, "conf: %s\n", errstr.c_str()); return 1;
  }
  conf->get("builtin.features", features);
  std::printf("builtin.features: %s\n", features.c_str());
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), errstr));
  if (!p) { std::fprintf(stderr, "producer: %s\n", errstr.c_str()); return 1; }
  std::string payload = "hello";
  p->produce("check", 0, RdKafka::Producer::RK_MSG_COPY, payload.data(), payload.size(),
             nullptr, 0, 0, nullptr);
  p->flush(10000);
  std::printf("produced to mock cluster: %d message(s) delivered\n", dr.delivered);
  p.reset();
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return dr.delivered == 1 ? 0 : 1;
}
EOF
verify_rc=0
(
  export PKG_CONFIG_PATH="$pcdir"
  # shellcheck disable=SC2046
  g++ -std=c++17 -o "$check_dir/check" "$check_dir/check.cpp" \
    $(pkg-config --cflags --libs rdkafka++ rdkafka) -Wl,-rpath,"$prefix/lib" &&
  "$check_dir/check"
) || verify_rc=$?
rm -rf "$check_dir"
[ "$verify_rc" -eq 0 ] || die "verification program failed (exit $verify_rc)"

v="$(PKG_CONFIG_PATH="$pcdir" pkg-config --modversion rdkafka++)"
ok=1
log "done: librdkafka $v (Debian $SUITE source $src_version) in $prefix"
log "use: PKG_CONFIG_PATH=$pcdir"
