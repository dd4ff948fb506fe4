#!/usr/bin/env bash
# The benchmark suite of issue 9, as BENCHMARKS.md reports it.
#
#   scripts/bench.sh            the whole suite (a few minutes on 2 cores)
#   scripts/bench.sh --quick    fewer iterations (about a minute)
#   scripts/bench.sh --only overhead,alternatives   some sections (see --help)
#
# Installs what skillbox is compared against (Debian's bubblewrap and firejail) when run as
# root with apt-get; otherwise says what to install and runs without those rows. Builds
# skillbox (as a static PIE with scripts/build-static.sh, and the default dynamically linked
# build, whose start the cold section times beside it) and the suite in release mode, then
# prints markdown tables to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v firejail >/dev/null || need+=(firejail)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${need[*]} (apt-get)" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "== not installed: ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
        echo "   to get their rows; running without them" >&2
    fi
fi

echo "== building (release)" >&2
cargo build --release --locked -q -p skillbox-cli -p skillbox-bench >&2
static=$(scripts/build-static.sh)
echo "== load before the run: $(cat /proc/loadavg)" >&2
exec target/release/skillbox-bench --skillbox "$static" \
    --skillbox-dynamic target/release/skillbox "$@"
