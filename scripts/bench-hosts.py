#!/usr/bin/env python3
"""What each simulated host costs per run, side by side in one run (issue 20).

    scripts/bench-hosts.py [--rounds N] [--runs N]

Runs `skillbox-bench --profile-loop VARIANT N` under `skillbox-hostsim PROFILE` for each
profile, the profiles alternating within each round so that the machine's drift falls on
all of them alike, and prints a markdown table: the median time per run (the median of the
rounds' medians), the CPU time per run of the whole process (user + system, from
getrusage of the children, divided by the runs), and the ratio to the `full` profile.

Then the cost of the first run of a process that holds 1 GiB, where the supervisor is forked
(no user namespaces) against where it is not, and how far a fork bomb gets past a process
count held by the watchdog (as `nobody`, without user namespaces: no pids cgroup, no
per-namespace RLIMIT_NPROC).

Needs the release builds: `cargo build --release -p skillbox-bench -p skillbox-hostsim
-p skillbox-cli`.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
BENCH = os.path.join(REL, "skillbox-bench")
HOSTSIM = os.path.join(REL, "skillbox-hostsim")
SKILLBOX = os.path.join(REL, "skillbox")

PROFILES = ["full", "no-userns", "landlock-abi-4", "debian-12", "landlock-abi-1", "no-landlock"]
MEDIAN = re.compile(r"median ([0-9.]+) ms")


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def loop(profile, variant, runs):
    """One process under `profile` running `variant` `runs` times: (median ms per run,
    CPU ms per run), or None when the profile refuses the run."""
    before = child_cpu()
    out = subprocess.run(
        [HOSTSIM, profile, "--", BENCH, "--profile-loop", variant, str(runs)],
        capture_output=True,
        text=True,
    )
    cpu = (child_cpu() - before) * 1000 / runs
    m = MEDIAN.search(out.stdout)
    if out.returncode != 0 or not m:
        return None
    return float(m.group(1)), cpu


def per_profile(variant, rounds, runs):
    results = {p: [] for p in PROFILES}
    for _ in range(rounds):
        for p in PROFILES:
            results[p].append(loop(p, variant, runs))
    print(f"\n### `{variant}`: {rounds} rounds of {runs} runs per profile\n")
    print("| profile | median per run | CPU per run | vs full |")
    print("|---|---|---|---|")
    base = None
    for p in PROFILES:
        got = [r for r in results[p] if r]
        if not got:
            print(f"| {p} | refused | | |")
            continue
        med = statistics.median(r[0] for r in got)
        cpu = statistics.median(r[1] for r in got)
        if p == "full":
            base = med
        ratio = f"{med / base:.2f}x" if base else ""
        print(f"| {p} | {med:.3f} ms | {cpu:.3f} ms | {ratio} |")


def probe_cost():
    """HostSupport::probe, which makes a user namespace to know, once per process."""
    print("\n### Finding out the host's mechanisms (once per process)\n")
    print("| profile | `HostSupport::probe`, median of 200 | p95 |")
    print("|---|---|---|")
    for p in ["full", "no-userns"]:
        out = subprocess.run([HOSTSIM, p, "--", BENCH, "--probe-cost", "200"],
                             capture_output=True, text=True).stdout
        m = re.search(r"median ([0-9.]+) ms p95 ([0-9.]+) ms", out)
        print(f"| {p} | {m.group(1)} ms | {m.group(2)} ms |" if m else f"| {p} | failed | |")


def first_run(rounds):
    """The first run of a process holding 1 GiB: the supervisor is forked there without
    user namespaces."""
    print(f"\n### The first run of a process holding 1 GiB ({rounds} processes each)\n")
    print("| profile | first run, median | p95 |")
    print("|---|---|---|")
    times = {"full": [], "no-userns": []}
    for _ in range(rounds):
        for p in times:
            r = loop(p, "sandbox@1g", 1)
            if r:
                times[p].append(r[0])
    for p, t in times.items():
        t.sort()
        p95 = t[min(len(t) - 1, int(len(t) * 0.95))]
        print(f"| {p} | {statistics.median(t):.2f} ms | {p95:.2f} ms |")


BOMBS = {
    # 200 children, one after another, each sleeping.
    "linear, 200 children": (
        "import os, time\n"
        "for _ in range(200):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "time.sleep(30)\n"
    ),
    # Every process forks for ever: the classic bomb.
    "exponential": (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.001)\n"
    ),
}


def fork_bomb(rounds):
    """How many processes a fork bomb has when the watchdog stops it (limit 8)."""
    if os.geteuid() != 0:
        print("\n(fork bomb overshoot: run as root, which runs it as nobody)")
        return
    print(f"\n### Fork bombs against a count of 8 held by the watchdog ({rounds} runs each, nobody, no-userns)\n")
    print("| bomb | processes seen when stopped (min / median / max) | run time until stopped, median | host threads before |")
    print("|---|---|---|---|")
    for name, code in BOMBS.items():
        one_bomb(name, code, rounds)


def one_bomb(name, bomb, rounds):
    ws = tempfile.mkdtemp(prefix="skillbox-bomb-")
    os.makedirs(os.path.join(ws, ".q-skills"))
    skill = {
        "name": "bomb",
        "description": "starts 200 processes as fast as it can",
        "version": "1.0.0",
        "type": "command",
        "command": "python3",
        "args": ["-c", bomb],
        "timeout": 20,
        "security": {
            "permissions": {"file_read": ["."], "process_spawn": "limited"},
            "resource_limits": {"max_processes": 8},
        },
    }
    with open(os.path.join(ws, ".q-skills", "bomb.json"), "w") as f:
        json.dump(skill, f)
    subprocess.run(["chmod", "-R", "a+rX", ws], check=True)
    os.chmod(ws, 0o755)
    peaks, walls, threads = [], [], []
    for _ in range(rounds):
        threads.append(int(open("/proc/loadavg").read().split()[3].split("/")[1]))
        out = subprocess.run(
            [HOSTSIM, "no-userns", "--", "setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups", "env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp",
             SKILLBOX, "--workspace", ws, "run", "bomb", "--trust", "user-verified", "--json"],
            capture_output=True,
            text=True,
        )
        try:
            r = json.loads(out.stdout)
        except ValueError:
            print(f"| {name} | no result: {out.stderr.strip()[:300]} | | |")
            return
        if r.get("limit") != "processes":
            print(f"| {name} | not stopped by the watchdog: {r.get('status')} {r.get('message')} | | |")
            return
        peaks.append(r["usage"]["processes_peak"])
        walls.append(r["usage"]["wall_ms"])
    print(f"| {name} | {min(peaks)} / {statistics.median(peaks):.0f} / {max(peaks)} | "
          f"{statistics.median(walls):.0f} ms | {statistics.median(threads):.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--only-bombs", action="store_true", help="only the fork bombs")
    a = ap.parse_args()
    if a.only_bombs:
        fork_bomb(a.rounds * 2)
        return
    for exe in (BENCH, HOSTSIM, SKILLBOX):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing: cargo build --release -p skillbox-bench -p skillbox-hostsim -p skillbox-cli")
    print(f"load before: {open('/proc/loadavg').read().strip()}, as {os.getlogin() if False else os.geteuid()}")
    per_profile("skill", a.rounds, a.runs)
    per_profile("sandbox", a.rounds, a.runs)
    probe_cost()
    first_run(a.rounds * 4)
    fork_bomb(a.rounds * 2)
    print(f"\nload after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
