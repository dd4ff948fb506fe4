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
#
# Not run under a profile (each for its reason, printed in the summary):
# - skillbox_sandbox (the crate's unit tests): they test functions, not a host;
# - mechanisms and mount_fallback: they pick their own simulated host, running themselves
#   under skillbox-hostsim; inside another profile the host would be both at once, which no
#   profile name describes;
# - files, under the profiles where a mount namespace of the run's own keeps files (no
#   Landlock, user namespaces): there its denials are ENOENT and EROFS where files.rs
#   expects Landlock's EACCES and EXDEV; mount_fallback.rs checks the same effects under
#   that mechanism. (carve and protected run there: they accept the mechanism's errno.)
#
# Measured on the 2-core CI machine: about 2 min 20 s per user for all 13 profiles (supervise
# is most of it: its timeout tests wait for their timeouts). Every binary runs under every
# profile: the loop is well inside the time CI allows.
#
# A failed test, or a binary that crashes without libtest's summary line, fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

all_profiles=(full no-userns no-landlock landlock-eperm landlock-abi-1 landlock-abi-2
    landlock-abi-3 landlock-abi-4 landlock-abi-5 ubuntu-24.04 debian-12 docker-default
    no-userns-no-landlock no-cgroups)
# Where files are kept by the run's own mount namespace (no Landlock, user namespaces).
mountns_profiles=" no-landlock landlock-eperm "
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
chmod -R a+rX "$target"

if [ "$(id -u)" = 0 ]; then users=(root nobody); else users=("$(id -un)"); fi
work=$(mktemp -d /tmp/skillbox-hosts.XXXXXX)
chmod 0777 "$work"
declare -A passed failed refused
skipped=()
status=0
start=$(date +%s)

for profile in "${profiles[@]}"; do
    for user in "${users[@]}"; do
        p=0 f=0 r=0
        while IFS=$'\t' read -r name exe; do
            case "$name" in
            skillbox_sandbox | mechanisms | mount_fallback) continue ;;
            files)
                if [[ $mountns_profiles == *" $profile "* ]]; then
                    [ "$user" = "${users[0]}" ] &&
                        skipped+=("$profile: files.rs not run (files kept by the mount namespace): covered by mount_fallback.rs")
                    continue
                fi
                ;;
            esac
            log="$work/$profile.$user.$name"
            refusals="$log.refused"
            run=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8
                SKILLBOX_TEST_PID_NAMESPACE=1 SKILLBOX_TEST_REFUSALS="$refusals"
                "$hostsim" "$profile" -- "$exe" --test-threads=2)
            if [ "$user" = nobody ]; then
                run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all
                    --bounding-set=-all "${run[@]}")
            fi
            if (cd crates/skillbox-sandbox && "${run[@]}") >"$log" 2>&1; then rc=0; else rc=$?; fi
            result=$(grep -E '^test result: ' "$log" | tail -1 || true)
            np=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result")
            nf=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
            nr=0
            [ -f "$refusals" ] && nr=$(cut -f1 "$refusals" | sort -u | wc -l)
            if [ -z "$result" ] || [ "$rc" != 0 ]; then
                echo "!! $name under $profile as $user FAILED (exit $rc); its output:"
                sed 's/^/   /' "$log" | grep -vE '^   +(at |[0-9]+: )' | tail -60
                status=1
                [ -n "$nf" ] && [ "$nf" != 0 ] || nf=1
            fi
            p=$((p + ${np:-0})) f=$((f + ${nf:-0})) r=$((r + nr))
        done <"$list"
        passed[$profile.$user]=$p failed[$profile.$user]=$f refused[$profile.$user]=$r
        echo "-- $profile as $user: $p passed ($r of them refused as the matrix says), $f failed"
    done
done

echo
echo "== the sandbox's tests under each simulated host ($(($(date +%s) - start)) s)"
echo "   passed: tests that passed, checking their effects or, where the matrix says the"
echo "   host cannot keep a guarantee, that the run was refused naming exactly it;"
echo "   REFUSED: how many of those passed on a refusal (SKILLBOX_TEST_REFUSALS)"
printf '%-24s' profile
for user in "${users[@]}"; do printf '%-34s' "$user"; done
echo
for profile in "${profiles[@]}"; do
    printf '%-24s' "$profile"
    for user in "${users[@]}"; do
        k=$profile.$user
        printf '%-34s' "${passed[$k]} passed (${refused[$k]} REFUSED) ${failed[$k]} failed"
    done
    echo
done
echo "   not run under the profiles: skillbox_sandbox (unit tests), mechanisms and"
echo "   mount_fallback (they run themselves under the simulated host they check)"
for s in "${skipped[@]}"; do echo "   !!! $s"; done
rm -rf "$work" "$list"
if [ "$status" != 0 ]; then
    echo "== FAILED: some tests failed under a simulated host"
    exit 1
fi
