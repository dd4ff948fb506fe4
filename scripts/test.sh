#!/usr/bin/env bash
# The whole test suite, as README.md documents it.
#
# 1. `cargo test` for the workspace, as the current user (root in CI).
# 2. The CLI's tests again against the static build of scripts/build-static.sh (the binary
#    scripts/bench.sh times), through SKILLBOX_TEST_BIN.
# 3. When run as root, every test binary again as the unprivileged user `nobody` (setpriv),
#    because a sandbox that only holds as root, or only as non-root, does not hold.
# 4. The sandbox's confinement tests under each simulated host (skillbox-hostsim), as root
#    and as nobody (as the current user alone when not root): scripts/test-hosts.sh, whose
#    summary table docs/testing.md explains. About 7 minutes on a 2-core machine.
# After 1: the official MCP conformance suite against `skillbox mcp --http`
#    (scripts/mcp-conformance.sh, about 15 seconds; docs/mcp.md, "Conformance"); then the
#    two-minute soak of `skillbox mcp` (scripts/soak.sh 120: 16 concurrent clients over stdio
#    and HTTP, then no process, cgroup, private directory or temporary file of any run left,
#    server descriptors and memory flat, the audit chain whole; docs/testing.md, "The soak"),
#    as the current user, and when root again as nobody after 3.
#
# A clean machine has Rust, Python 3 and apt only (Node 20 and npm are used if present, else
# apt's); anything else the tests need is installed
# by scripts/install-test-deps.sh, which this script calls first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

scripts/install-test-deps.sh

echo "== cargo test (as $(id -un))"
# The confinement tests run parts of themselves under skillbox-hostsim (simulated hosts).
cargo build -p skillbox-hostsim --locked
cargo test --workspace --locked

echo "== the official MCP conformance suite against skillbox mcp --http"
scripts/mcp-conformance.sh

echo "== the soak of skillbox mcp, two minutes (as $(id -un))"
scripts/soak.sh 120

echo "== the CLI's tests again against the static build (scripts/build-static.sh)"
static="$repo/$(scripts/build-static.sh)"
SKILLBOX_TEST_BIN="$static" cargo test -p skillbox-cli --locked --tests

if [ "$(id -u)" != 0 ]; then
    echo "== the sandbox's tests under each simulated host, as $(id -un)"
    scripts/test-hosts.sh
    echo "== not root: the root pass of this suite runs in CI; the tests above ran as $(id -un)"
    exit 0
fi

echo "== the same test binaries again as nobody (setpriv, all capabilities dropped)"
# nobody must be able to reach the repository (test binaries read examples/ and run the
# skillbox binary). If a parent directory is private (a clone under /root), build and run
# from a world-readable copy instead.
src=$repo
if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$repo/Cargo.toml" 2>/dev/null; then
    src=$(mktemp -d /tmp/skillbox-nobody.XXXXXX)
    echo "   $repo is not readable by nobody; copying it to $src"
    tar -C "$repo" --exclude=./target -cf - . | tar -C "$src" -xf -
    chmod -R a+rX "$src"
    chmod a+rx "$src"
fi
export CARGO_TARGET_DIR="$src/target"
list=$(mktemp)
(cd "$src" && cargo build -p skillbox-hostsim --locked)
(cd "$src" && cargo test --workspace --locked --no-run --message-format=json 2>/dev/null) \
    | python3 -c '
import json, sys, os
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' > "$list"
chmod -R a+rX "$CARGO_TARGET_DIR"
status=0
while IFS=$'\t' read -r dir exe; do
    echo "-- $(basename "$exe") as nobody (cwd $dir)"
    if ! (cd "$dir" && setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
            --bounding-set=-all env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp \
            LANG=C.UTF-8 "$exe" --test-threads=2); then
        status=1
    fi
done < "$list"
rm -f "$list"
if [ "$status" != 0 ]; then
    echo "== FAILED: some tests failed as nobody"
    exit 1
fi

echo "== the soak of skillbox mcp, two minutes, as nobody"
(cd "$src" && setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
    --bounding-set=-all env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 \
    SKILLBOX_BIN="$CARGO_TARGET_DIR/debug/skillbox" scripts/soak.sh 120)

echo "== the sandbox's tests under each simulated host, as root and as nobody"
# From the copy nobody can read, with its target directory (built above).
(cd "$src" && scripts/test-hosts.sh)
echo "== all test binaries passed as root and as nobody, on this host and on each simulated one"
