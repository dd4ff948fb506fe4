#!/usr/bin/env bash
# Installs what the tests need beyond Rust and Python 3. Idempotent: does nothing when all is
# present.
#
# * setpriv (util-linux), for the unprivileged pass of scripts/test.sh;
# * python3, for skills;
# * curl, git and openssl, the real clients and the test CA of the egress tests
#   (crates/skillbox-cli/tests/egress.rs, which also runs pip from the venv below);
# * groff (groff-base), which checks the manual pages `skillbox man` writes render without
#   warnings (crates/skillbox-cli/tests/install.rs);
# * the official MCP Python SDK (PyPI `mcp`), the client the MCP tests drive the server
#   with. It goes into a virtual environment that every user can run, because the tests run
#   again as `nobody`: /opt/skillbox-test-venv when root, built on Debian's /usr/bin/python3
#   (a pyenv interpreter under /root is not reachable by nobody), else
#   ~/.cache/skillbox-test-venv. crates/skillbox-cli/tests/mcp.rs looks in both places, or
#   at $SKILLBOX_TEST_PYTHON.
# * Node 22 (the npm package `node`), the official MCP conformance suite
#   (@modelcontextprotocol/conformance) and the MCP TypeScript SDK (@modelcontextprotocol/sdk),
#   installed with npm (Node 20 and npm suffice; apt's nodejs and npm are installed as root when
#   npm is missing) into /opt/skillbox-test-node when root, else ~/.cache/skillbox-test-node;
#   scripts/mcp-conformance.sh and crates/skillbox-cli/tests/mcp_http.rs use them (or
#   $SKILLBOX_TEST_NODE_DIR).
set -euo pipefail
MCP_SDK_VERSION=2.3.0
NODE_VERSION=22.23.3
CONFORMANCE_VERSION=0.1.16
TS_SDK_VERSION=1.32.2

need=()
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v git >/dev/null 2>&1 || need+=(git)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ "$(id -u)" = 0 ] && [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "missing: ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

if [ "$(id -u)" = 0 ]; then
    venv=/opt/skillbox-test-venv
    base=/usr/bin/python3
    [ -x "$base" ] || base=$(command -v python3)
else
    venv="${HOME:?HOME is unset}/.cache/skillbox-test-venv"
    base=$(command -v python3)
fi
if ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$MCP_SDK_VERSION'" 2>/dev/null; then
    echo "== installing the official MCP Python SDK (mcp==$MCP_SDK_VERSION) into $venv"
    rm -rf "$venv"
    "$base" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_SDK_VERSION"
    chmod -R a+rX "$venv"
fi

if [ "$(id -u)" = 0 ]; then
    nodedir=/opt/skillbox-test-node
else
    nodedir="$HOME/.cache/skillbox-test-node"
fi
node_ready() {
    [ -x "$nodedir/node_modules/.bin/node" ] || return 1
    "$nodedir/node_modules/.bin/node" -e '
        const [dir, node, conf, sdk] = process.argv.slice(1);
        const v = (p) => require(dir + "/node_modules/" + p + "/package.json").version;
        process.exit(process.versions.node === node && v("@modelcontextprotocol/conformance") === conf
            && v("@modelcontextprotocol/sdk") === sdk ? 0 : 1);
    ' "$nodedir" "$NODE_VERSION" "$CONFORMANCE_VERSION" "$TS_SDK_VERSION" 2>/dev/null
}
if ! node_ready; then
    echo "== installing Node $NODE_VERSION, @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and @modelcontextprotocol/sdk@$TS_SDK_VERSION (npm) into $nodedir"
    rm -rf "$nodedir"
    mkdir -p "$nodedir"
    echo '{"private": true}' > "$nodedir/package.json"
    # The `node` package fetches the platform's binary in its install script.
    timeout 600 npm install --prefix "$nodedir" --no-audit --no-fund --save-exact --loglevel=error \
        "node@$NODE_VERSION" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
        "@modelcontextprotocol/sdk@$TS_SDK_VERSION"
    chmod -R a+rX "$nodedir"
    if ! node_ready; then
        echo "npm installed into $nodedir, but $nodedir/node_modules/.bin/node is not Node $NODE_VERSION with the packages above (did npm skip the \`node\` package's install script?)" >&2
        exit 1
    fi
fi
