#!/usr/bin/env bash
# Builds the `skillbox` command as a static position-independent executable and prints its
# path (target/<host triple>/release/skillbox).
#
# Why: a process start of the default, dynamically linked build spends most of its time in
# the dynamic loader (mapping libc, libm and libgcc_s, resolving symbols, relocating). The
# static PIE keeps address-space randomization and full RELRO, and starts about 0.5 ms
# sooner on the project's machines (BENCHMARKS.md, "Cold `skillbox run`"). skillbox uses no
# glibc function that needs shared objects at run time (NSS, iconv, dlopen), so linking
# glibc in changes nothing else.
#
# `--target` is given explicitly so that `crt-static` applies to skillbox only, not to the
# build scripts and proc-macros cargo builds for the host (which cannot be static).
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked -q -p skillbox-cli --target "$host" >&2
bin="target/$host/release/skillbox"
# Refuse to hand out a binary that still asks for the dynamic loader (a linker that ignored
# crt-static), one that lost position independence (no address-space randomization), or one
# without full RELRO (relocations resolved at start, then made read-only).
if readelf -l "$bin" | grep -q INTERP || ! readelf -h "$bin" | grep -q 'DYN'; then
    echo "build-static: $bin is not a static position-independent executable" >&2
    exit 1
fi
if ! readelf -l "$bin" | grep -q GNU_RELRO || ! readelf -d "$bin" | grep -q BIND_NOW; then
    echo "build-static: $bin lacks full RELRO (GNU_RELRO and BIND_NOW)" >&2
    exit 1
fi
echo "$bin"
