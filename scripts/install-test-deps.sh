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
set -euo pipefail
MCP_SDK_VERSION=2.3.0

need=()
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v git >/dev/null 2>&1 || need+=(git)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
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
