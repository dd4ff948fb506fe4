#!/usr/bin/env bash
# Runs the server scenarios of the official MCP conformance suite
# (@modelcontextprotocol/conformance, on Node 22; both installed by
# scripts/install-test-deps.sh) against `skillbox mcp --http`, serving the fixtures workspace
# crates/skillbox-cli/tests/conformance/workspace, whose skills implement the suite's fixture
# tools and prompts, and an Agent Skill whose documents are its resources.
#
# Fails when a scenario fails that crates/skillbox-cli/tests/conformance/expected-failures.yml
# does not list, when a listed one passes (a stale entry), when the server dies, or after
# five minutes. The suite cannot send an Authorization header, so a loopback proxy
# (tests/conformance/auth-proxy.mjs) adds the server's token and passes all else unchanged.
#
# SKILLBOX_TEST_BIN: the skillbox binary to test (default: a debug build of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
dir=crates/skillbox-cli/tests/conformance

scripts/install-test-deps.sh
if [ "$(id -u)" = 0 ]; then nodedir=/opt/skillbox-test-node; else nodedir="$HOME/.cache/skillbox-test-node"; fi
nodedir=${SKILLBOX_TEST_NODE_DIR:-$nodedir}
node="$nodedir/node_modules/.bin/node"
suite="$nodedir/node_modules/@modelcontextprotocol/conformance/dist/index.js"

bin=${SKILLBOX_TEST_BIN:-}
if [ -z "$bin" ]; then
    cargo build -p skillbox-cli --locked --quiet
    bin="$repo/target/debug/skillbox"
fi

tmp=$(mktemp -d /tmp/skillbox-conformance.XXXXXX)
server_pid='' proxy_pid=''
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -m 700 "$tmp/home"
SKILLBOX_HOME="$tmp/home" SKILLBOX_MCP_TOKEN='' "$bin" --workspace "$dir/workspace" mcp \
    --http 127.0.0.1:0 2>"$tmp/server.log" &
server_pid=$!
addr=''
for _ in $(seq 100); do
    addr=$(grep -o 'http://127\.0\.0\.1:[0-9]*/mcp' "$tmp/server.log" | head -1 || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "skillbox mcp --http did not start:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

"$node" "$dir/auth-proxy.mjs" "$addr" "$tmp/home/mcp-token" >"$tmp/proxy.port" &
proxy_pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/proxy.port" ] && break
    sleep 0.1
done
port=$(head -1 "$tmp/proxy.port")
[ -n "$port" ] || { echo "the auth proxy did not start" >&2; exit 1; }

echo "== MCP conformance suite $("$node" -p "require('$nodedir/node_modules/@modelcontextprotocol/conformance/package.json').version") (Node $("$node" --version)) against skillbox mcp --http ($addr)"
status=0
(cd "$tmp" && timeout 300 "$node" "$suite" server --suite all --url "http://127.0.0.1:$port/mcp" \
    --expected-failures "$repo/$dir/expected-failures.yml" -o "$tmp/results") >"$tmp/suite.log" 2>&1 || status=$?
sed -n '/=== SUMMARY ===/,$p' "$tmp/suite.log"

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAILED: skillbox mcp --http died during the suite; its log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

# The counts docs/mcp.md quotes: scenarios passed, failed as expected, failed unexpectedly.
python3 - "$tmp/suite.log" "$dir/expected-failures.yml" <<'PY'
import re, sys
log = open(sys.argv[1], encoding="utf-8").read()
expected = set(re.findall(r"^\s*-\s*([\w:.-]+)\s*$", open(sys.argv[2]).read(), re.M))
rows = re.findall(r"^([✓✗]) ([\w.-]+): (\d+) passed, (\d+) failed", log, re.M)
passed = [n for mark, n, _, _ in rows if mark == "✓"]
failed = [n for mark, n, _, _ in rows if mark == "✗"]
exp = [n for n in failed if n in expected]
unexp = [n for n in failed if n not in expected]
stale = [n for n in passed if n in expected]
print(f"conformance: {len(rows)} scenarios: {len(passed)} passed, {len(exp)} expected failures, "
      f"{len(unexp)} unexpected failures" + (f" ({', '.join(unexp)})" if unexp else "")
      + (f"; listed as expected but passed: {', '.join(stale)}" if stale else ""))
sys.exit(1 if not rows or unexp or stale else 0)
PY
if [ "$status" != 0 ]; then
    echo "FAILED: the conformance suite exited with $status (124: it ran out of time); its log:" >&2
    cat "$tmp/suite.log" >&2
    exit 1
fi
