#!/usr/bin/env bash
# Installs what the tests need beyond Rust and Python 3. Idempotent: does nothing when all is
# present. Today: setpriv (util-linux) for the unprivileged pass, python3 for skills.
set -euo pipefail
need=()
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "missing: ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi
