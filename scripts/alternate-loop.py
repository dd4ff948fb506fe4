#!/usr/bin/env python3
"""Two or more builds of skillbox-bench side by side: `BENCH --profile-loop VARIANT RUNS` of
each, alternating, ROUNDS rounds (the order reversed every other round).

    scripts/alternate-loop.py ROUNDS RUNS VARIANT label=PATH label=PATH ... [-- PREFIX...]

Prints, per build, the median of the rounds' medians per run, the range of the rounds, and
the CPU time per run of the whole process (user + system of it and its children, from
getrusage), and the change against the first build. PREFIX runs before each command (e.g.
`skillbox-hostsim full --`). Like scripts/alternate.py, for the per-run cost inside one
process rather than a cold process each time.
"""
import re, resource, statistics, subprocess, sys
if len(sys.argv) < 6:
    sys.exit(__doc__)
rounds, runs, variant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rest = sys.argv[4:]
prefix = []
if "--" in rest:
    i = rest.index("--"); prefix = rest[i+1:]; rest = rest[:i]
builds = [a.split("=", 1) for a in rest]
MED = re.compile(r"median ([0-9.]+) ms")
res = {l: [] for l, _ in builds}
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN); return r.ru_utime + r.ru_stime
for k in range(rounds):
    order = builds if k % 2 == 0 else builds[::-1]
    for label, path in order:
        before = cpu()
        out = subprocess.run(prefix + [path, "--profile-loop", variant, str(runs)], capture_output=True, text=True)
        c = (cpu() - before) * 1000 / runs
        m = MED.search(out.stdout)
        if out.returncode or not m:
            print("failed", label, out.stdout[-300:], out.stderr[-500:]); sys.exit(1)
        res[label].append((float(m.group(1)), c))
base = None
for label, _ in builds:
    med = statistics.median(r[0] for r in res[label]); c = statistics.median(r[1] for r in res[label])
    lo, hi = min(r[0] for r in res[label]), max(r[0] for r in res[label])
    if base is None: base = (med, c)
    print(f"{label:6s} median per run {med:.3f} ms (rounds {lo:.3f}..{hi:.3f})  CPU per run {c:.3f} ms   vs first: {med-base[0]:+.3f} ms, CPU {c-base[1]:+.3f} ms")
