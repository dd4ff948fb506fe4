#!/usr/bin/env bash
# Line coverage of the library crates (not the CLI binary), with cargo-llvm-cov.
# Installs what it needs: the llvm-tools rustup component and cargo-llvm-cov.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add llvm-tools-preview >/dev/null 2>&1 || true
command -v cargo-llvm-cov >/dev/null 2>&1 || cargo install cargo-llvm-cov --locked
cargo llvm-cov --workspace --exclude skillbox-cli --summary-only "$@"
