#!/usr/bin/env bash
# The sandbox's confinement tests under each simulated host (issue 20), as root and as
# nobody: scripts/test.sh runs this after its normal passes; docs/testing.md explains it.
#
#   scripts/test-hosts.sh [PROFILE...]      (default: every profile of skillbox-hostsim)
#
# Each test binary of crates/skillbox-sandbox runs as
#   skillbox-hostsim PROFILE -- EXE --test-threads=2
# with SKILLBOX_TEST_PID_NAMESPACE=1 (the tests' strict policy then asks for a PID namespace,
# as every skill's policy does) and, as root, once more as nobody (setpriv, every capability
# dropped). hostsim exports SKILLBOX_HOSTSIM_PROFILE; the tests' host model (tests/hosts)
# derives from it, and from what the kernel answers, which guarantees each policy keeps and
# by which mechanism: where the model says a run is refused, the test checks that it is,
# naming exactly the missing guarantees, and writes that down in SKILLBOX_TEST_REFUSALS.
# Where a run is refused for file-metadata and process-visibility alone (no user namespaces),
# the tests then make it again with weaker isolation asked for and check its effects: such
# refusals are marked in that file, and counted apart ("then weaker").
#
# Not run under a profile (each for its reason, printed in the summary):
# - skillbox_sandbox (the crate's unit tests): they test functions, not a host;
# - mechanisms, mount_fallback, planted, metadata and proc: they pick their own simulated host,
#   running themselves under skillbox-hostsim; inside another profile the host would be both
#   at once, which no profile name describes. They run in scripts/test.sh's normal passes.
#
# Measured on a 2-core machine shared with other work: 382 s and 425 s (two runs) for all
# 14 profiles as root and as nobody, 1 to 24 s per profile and user (supervise, whose tests
# wait for their timeouts, took 261 of the 425 s); as a non-root user alone about half
# that. Every binary runs under every profile, well under 15 minutes.
#
#   scripts/test-hosts.sh no-cgroups        one profile (as root: as root and as nobody)
#
# A failed test, or a binary that crashes without libtest's summary line, fails the script;
# so does a profile hostsim cannot give (exit 125: e.g. no-cgroups for a non-root user with
# a delegated, writable cgroup).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

all_profiles=(full no-userns no-landlock landlock-eperm landlock-abi-1 landlock-abi-2
    landlock-abi-3 landlock-abi-4 landlock-abi-5 ubuntu-24.04 debian-12 docker-default
    no-userns-no-landlock no-cgroups)
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=("${all_profiles[@]}")

cargo build -p skillbox-hostsim --locked
hostsim="$target/debug/skillbox-hostsim"
list=$(mktemp)
cargo test -p skillbox-sandbox --locked --tests --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        print(m["target"]["name"] + "\t" + m["executable"])
' | sort > "$list"

if [ "$(id -u)" = 0 ]; then
    users=(root nobody)
    # nobody runs the binaries and hostsim from here.
    chmod -R a+rX "$target"
else
    users=("$(id -un)")
fi
# Runs "$@" (after the user) as that user: as nobody from root by setpriv, else as it is.
as_user() {
    if [ "$1" != "$(id -un)" ]; then
        shift
        setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
            --bounding-set=-all "$@"
    else
        shift
        "$@"
    fi
}
# Every profile named must be one hostsim can give this user (exit 2: unknown; 125: it
# cannot take away what the profile says), before anything runs.
for profile in "${profiles[@]}"; do
    for user in "${users[@]}"; do
        if ! err=$(as_user "$user" "$hostsim" "$profile" -- /bin/true 2>&1); then
            echo "== FAILED: skillbox-hostsim cannot give profile $profile to $user: $err"
            exit 1
        fi
    done
done
work=$(mktemp -d /tmp/skillbox-hosts.XXXXXX)
chmod 0777 "$work"
declare -A passed failed refused weaker seconds
status=0
start=$(date +%s)

for profile in "${profiles[@]}"; do
    for user in "${users[@]}"; do
        p=0 f=0 r=0 w=0
        t_profile=$(date +%s)
        while IFS=$'\t' read -r name exe; do
            case "$name" in
            skillbox_sandbox | mechanisms | mount_fallback | planted | metadata | proc) continue ;;
            esac
            log="$work/$profile.$user.$name"
            refusals="$log.refused"
            run=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8
                SKILLBOX_TEST_PID_NAMESPACE=1 SKILLBOX_TEST_REFUSALS="$refusals"
                "$hostsim" "$profile" -- "$exe" --test-threads=2)
            t0=$(date +%s)
            if (cd crates/skillbox-sandbox && as_user "$user" "${run[@]}") >"$log" 2>&1; then
                rc=0
            else
                rc=$?
            fi
            seconds[$name]=$((${seconds[$name]:-0} + $(date +%s) - t0))
            result=$(grep -E '^test result: ' "$log" | tail -1 || true)
            np=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result")
            nf=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
            nr=0 nw=0
            if [ -f "$refusals" ]; then
                nr=$(cut -f1 "$refusals" | sort -u | wc -l)
                nw=$(awk -F'\t' 'NF > 2 { print $1 }' "$refusals" | sort -u | wc -l)
            fi
            if [ -z "$result" ] || [ "$rc" != 0 ]; then
                echo "!! $name under $profile as $user FAILED (exit $rc); its output:"
                sed 's/^/   /' "$log" | grep -vE '^   +(at |[0-9]+: )' | tail -60
                status=1
                [ -n "$nf" ] && [ "$nf" != 0 ] || nf=1
            fi
            p=$((p + ${np:-0})) f=$((f + ${nf:-0})) r=$((r + nr)) w=$((w + nw))
        done <"$list"
        passed[$profile.$user]=$p failed[$profile.$user]=$f refused[$profile.$user]=$r
        weaker[$profile.$user]=$w
        echo "-- $profile as $user: $p passed ($r of them refused as the matrix says, $w of" \
            "those then run with weaker isolation), $f failed ($(($(date +%s) - t_profile)) s)"
    done
done

echo
echo "== the sandbox's tests under each simulated host ($(($(date +%s) - start)) s)"
echo "   passed: tests that passed, checking their effects or, where the matrix says the"
echo "   host cannot keep a guarantee, that the run was refused naming exactly it;"
echo "   REFUSED: how many of those had a run refused (SKILLBOX_TEST_REFUSALS); weaker: how"
echo "   many of those were refused for file-metadata and process-visibility alone, then made"
echo "   again with weaker isolation asked for, and checked their effects"
printf '%-24s' profile
for user in "${users[@]}"; do printf '%-46s' "$user"; done
echo
for profile in "${profiles[@]}"; do
    printf '%-24s' "$profile"
    for user in "${users[@]}"; do
        k=$profile.$user
        printf '%-46s' "${passed[$k]} passed (${refused[$k]} REFUSED, ${weaker[$k]} weaker) ${failed[$k]} failed"
    done
    echo
done
echo "   not run under the profiles: skillbox_sandbox (unit tests), mechanisms,"
echo "   mount_fallback, planted, metadata and proc (they run themselves under the simulated"
echo "   hosts they check)"
echo "   slowest binaries (s, all profiles and users):" \
    "$(for n in "${!seconds[@]}"; do echo "${seconds[$n]} $n"; done | sort -rn | head -4 |
        awk '{printf "%s %s; ", $2, $1}')"
rm -rf "$work" "$list"
if [ "$status" != 0 ]; then
    echo "== FAILED: some tests failed under a simulated host"
    exit 1
fi
