#!/usr/bin/env python3
"""Times shell commands interleaved (A B C A B C ...) so drift and noise hit
every candidate alike; prints median/min/max in ms and the ratio of each
median to the first (baseline) command's median.

usage: timeit.py [-n RUNS] [-w WARMUP] [--markdown] NAME=CMD [NAME=CMD ...]
The first NAME=CMD is the baseline. A CMD without shell syntax is executed
directly (no /bin/sh in the measurement); one with shell syntax runs through
/bin/sh -c. A non-zero exit aborts the benchmark (a failing command is not a
result).
"""
import argparse
import shlex
import statistics
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("-w", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("cmds", nargs="+")
    a = ap.parse_args()
    cands = []
    for c in a.cmds:
        name, _, cmd = c.partition("=")
        argv = shlex.split(cmd) if not any(ch in cmd for ch in "|&;<>()$`*?\\") else ["/bin/sh", "-c", cmd]
        cands.append((name, argv))
    times = {n: [] for n, _ in cands}
    for i in range(a.w + a.n):
        for name, cmd in cands:
            t0 = time.perf_counter()
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = (time.perf_counter() - t0) * 1000
            if r.returncode != 0:
                sys.exit(f"timeit: {name} failed (exit {r.returncode}): {r.stderr.decode()[-400:]}")
            if i >= a.w:
                times[name].append(dt)
    base = statistics.median(times[cands[0][0]])
    if a.markdown:
        print("| command | median ms | min ms | max ms | ratio vs %s |" % cands[0][0])
        print("|---|---:|---:|---:|---:|")
    for name, _ in cands:
        t = times[name]
        med = statistics.median(t)
        if a.markdown:
            print(f"| {name} | {med:.2f} | {min(t):.2f} | {max(t):.2f} | {med / base:.2f} |")
        else:
            print(f"{name:<28} median {med:8.2f} ms  min {min(t):8.2f}  max {max(t):8.2f}  ratio {med / base:5.2f}  (n={len(t)})")


if __name__ == "__main__":
    main()
