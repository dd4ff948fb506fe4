#!/usr/bin/env bash
# The soak of `skillbox mcp` (docs/testing.md, "The soak"): 16 concurrent clients of the
# official MCP Python SDK, 8 over Streamable HTTP to one `skillbox mcp --http` and 8 over
# stdio (each its own `skillbox mcp`), making mixed calls for DURATION seconds: successes,
# refused parameters, denials, timeouts, memory-limit kills, fork bombs, 100 MiB output
# floods, calls cancelled mid-run and calls of unknown tools. Then it looks for what a run
# left: processes, cgroups, private directories, temporary files; compares each server's
# open descriptors and resident memory with their values after the warm-up (15% of the run);
# and checks that the audit chain verifies with exactly one start and one end event per call.
# Prints a table and exits 1 on any leak or unexpected result (scripts/soak.py does the work).
#
# Usage: scripts/soak.sh [DURATION_SECONDS]   (default 600; scripts/test.sh runs 120)
# SKILLBOX_BIN: the skillbox binary (default: a debug build of this checkout).
# SKILLBOX_TEST_PYTHON: a Python with the `mcp` SDK (default: scripts/install-test-deps.sh's).
# Works as root and as any other user (the soak's files go to a fresh directory under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
duration=${1:-600}

bin=${SKILLBOX_BIN:-}
if [ -z "$bin" ]; then
    cargo build -p skillbox-cli --locked --quiet
    bin="$repo/target/debug/skillbox"
fi
python=${SKILLBOX_TEST_PYTHON:-}
if [ -z "$python" ]; then
    for venv in /opt/skillbox-test-venv "$HOME/.cache/skillbox-test-venv"; do
        if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
            python="$venv/bin/python"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "soak: no Python with the MCP SDK; run scripts/install-test-deps.sh" >&2
    exit 1
fi

root=$(mktemp -d /tmp/skillbox-soak.XXXXXX)
keep=${SKILLBOX_SOAK_KEEP:-}
cleanup() { if [ -z "$keep" ]; then rm -rf "$root"; else echo "soak: kept $root"; fi; }
trap cleanup EXIT
mkdir -m 700 "$root/home" "$root/tmp"
cp -r scripts/soak/workspace "$root/ws"
"$python" "$repo/scripts/soak.py" "$bin" "$root" "$duration"
