#!/usr/bin/env bash
# Fuzzes skillbox's parsers of untrusted input (the cargo-fuzz targets in fuzz/) for a bounded
# time each, and fails if any target found a crash. docs/testing.md ("Fuzzing") describes the
# targets and what to do with a crash.
#
#   FUZZ_SECONDS  seconds per target (default 20)
#   FUZZ_TARGETS  targets to run, space-separated (default: all of fuzz/Cargo.toml)
#   FUZZ_JOBS     targets run at once (default 2: one per core of a CI machine)
#   FUZZ_ARGS     more libFuzzer options, e.g. -max_len=65536 (inputs longer than the
#                 default 4 KiB, for costs that only show on long inputs)
#
# Needs the nightly toolchain; installs cargo-fuzz when it is missing. Each target fuzzes a
# copy of its committed corpus (fuzz/corpus/TARGET, the seeds) in a temporary directory, so
# the committed corpora never grow; a crash is kept in fuzz/artifacts/TARGET/ (not in git).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "== FAILED: fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

all=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^skillbox-fuzz$' || true)
targets=${FUZZ_TARGETS:-$all}

echo "== building the fuzz targets (cargo +nightly fuzz build)"
# cargo-fuzz's defaults: optimised, debug assertions, AddressSanitizer (the YAML parser is
# C translated to unsafe Rust). Measured on 2 cores, neither more codegen units nor a lower
# opt-level made the build cheaper; without the sanitizer it took 15% less CPU time.
(cd fuzz && cargo +nightly fuzz build)
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 && ! git -C "$repo" diff --quiet -- fuzz/Cargo.lock; then
    echo "== FAILED: the build changed fuzz/Cargo.lock (the workspace's dependencies changed);" \
        "commit the updated file" >&2
    exit 1
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin="$repo/fuzz/target/$triple/release"

work=$(mktemp -d /tmp/skillbox-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The dictionary of tokens each target's input is made of.
dict_for() {
    case "$1" in
        agent_skill) echo yaml ;;
        mcp_framing) echo jsonrpc ;;
        pattern) echo regex ;;
        host_pattern) echo host ;;
        proxy_request) echo http ;;
        *) echo json ;;
    esac
}

# Fuzzes one target; writes "TARGET EXECS EXECS_PER_S SEEDS CORPUS CRASHES" to $work/TARGET.row.
fuzz_one() {
    local t=$1
    local corpus="$work/corpus/$t" art="$repo/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$art" "$work/scratch/$t"
    cp fuzz/corpus/"$t"/* "$corpus"/
    local seeds before
    seeds=$(find "$corpus" -type f | wc -l)
    before=$(find "$art" -type f | wc -l)
    set +e
    # -timeout: an input that takes 10 s is a hang, and kept as one.
    SKILLBOX_FUZZ_SCRATCH="$work/scratch/$t" "$bin/$t" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} \
        -dict="fuzz/dict/$(dict_for "$t").dict" -artifact_prefix="$art/" \
        >"$work/$t.log" 2>&1
    local rc=$?
    set -e
    local execs rate size crashes
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
    size=$(find "$corpus" -type f | wc -l)
    crashes=$(($(find "$art" -type f | wc -l) - before))
    # A run that ended early without leaving an input behind still failed.
    if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes="rc=$rc"; fi
    echo "$t ${execs:-?} ${rate:-?} $seeds $size $crashes" >"$work/$t.row"
}

echo "== fuzzing each target for ${seconds} s, $jobs at a time"
running=0
for t in $targets; do
    if [ ! -x "$bin/$t" ]; then
        echo "== FAILED: no fuzz target $t (targets: $(echo $all))" >&2
        exit 1
    fi
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
printf '%-14s %10s %8s %14s %8s\n' target execs exec/s "corpus (seeds)" crashes
for t in $targets; do
    if [ ! -f "$work/$t.row" ]; then
        echo "-- $t: the run did not finish (see above)"
        failed=1
        continue
    fi
    read -r name execs rate seeds size crashes <"$work/$t.row"
    printf '%-14s %10s %8s %14s %8s\n' "$name" "$execs" "$rate" "$size ($seeds)" "$crashes"
    if [ "$crashes" != 0 ]; then
        failed=1
        echo "-- $t: what libFuzzer reported"
        { grep -m1 -A4 'panicked at' "$work/$t.log" || true
            grep -E '^==[0-9]+== ERROR|^SUMMARY|Test unit written' "$work/$t.log" || true
        } | sed 's/^/   /'
    fi
done
if [ "$failed" != 0 ]; then
    echo "== FAILED: a fuzz target crashed; the inputs are in fuzz/artifacts/TARGET/." \
        "Reproduce with fuzz/target/$triple/release/TARGET FILE, fix, and add a regression test" \
        "(docs/testing.md, \"Fuzzing\")" >&2
    exit 1
fi
echo "== no crash in $(echo $targets | wc -w) fuzz targets (${seconds} s each)"
