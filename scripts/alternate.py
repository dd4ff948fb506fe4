#!/usr/bin/env python3
"""Two or more commands run alternately, for a side-by-side comparison of binaries.

    scripts/alternate.py N label=COMMAND label=COMMAND ...

Each command is run N times (after 20 unmeasured warm-up rounds), in alternating order, with
stdout and stderr sent to /dev/null; the wall time of each run and the CPU time of the
process (its rusage) are kept. Prints the median, p5 and p95 of each, and the change against
the first command. Commands are split on spaces (no shell). On this project's shared 2-CPU
machines, only such interleaved comparisons tell changes of a few percent apart; two copies
of the same binary are a useful control (they differ by 2 to 4% here).
"""
import os
import statistics
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    n = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    env = dict(os.environ)
    devnull = os.open("/dev/null", os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]

    def run(argv):
        t = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, ru = os.wait4(pid, 0)
        if status != 0:
            print("failed:", " ".join(argv), status, file=sys.stderr)
        return time.perf_counter_ns() - t, (ru.ru_utime + ru.ru_stime) * 1e3

    wall = {label: [] for label, _ in cmds}
    cpu = {label: [] for label, _ in cmds}
    for _ in range(20):
        for _, c in cmds:
            run(c.split())
    for i in range(n):
        for label, c in cmds if i % 2 == 0 else cmds[::-1]:
            w, u = run(c.split())
            wall[label].append(w / 1e6)
            cpu[label].append(u)
    base = cbase = None
    for label, _ in cmds:
        m = statistics.median(wall[label])
        q = statistics.quantiles(wall[label], n=20)
        c = statistics.median(cpu[label])
        base = base or m
        cbase = cbase or c
        print(
            f"{label:12s} n={n} median {m:.3f} ms  p5 {q[0]:.3f}  p95 {q[-1]:.3f}  "
            f"({(m / base - 1) * 100:+.1f}%)   cpu median {c:.2f} ms ({(c / cbase - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
