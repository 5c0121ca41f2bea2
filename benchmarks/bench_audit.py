#!/usr/bin/env python3
"""Time an end-to-end audit (read + analyze) of the synthetic benchmark logdir.

The workload is `../shared/bench/make_logdir.py` (default: 20 runs x 25,000 steps x 4 tags =
2 million scalars). Prints the read time, the analysis time, their ratio, and the analysis time
per point on runs cut to 1/8, 1/4, 1/2 and all of their steps: flat ns/point means linear.

Example:
    python benchmarks/bench_audit.py --logdir bench_logdir --runs 20 --steps 25000 --tags 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time

from lrdoctor.analyzers import Run, Series, audit, read_logdir
from lrdoctor.analyzers.stats import loss_profile

MAKE_LOGDIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "make_logdir.py")


def cut(run: Run, frac: float) -> Run:
    """The run with each series cut to its first ``frac`` of points."""
    scalars = {}
    for tag, s in run.scalars.items():
        k = max(1, int(len(s) * frac))
        scalars[tag] = Series(s.tag, s.steps[:k].copy(), s.values[:k].copy(), s.wall_times[:k].copy())
    return dataclasses.replace(run, scalars=scalars)


def best_of(fn, repeat: int) -> float:
    """Fastest of ``repeat`` timings of ``fn()`` (seconds), each from a cold profile cache."""
    times = []
    for _ in range(repeat):
        loss_profile.cache_clear()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    """Generate the workload if missing, then time reading and analysis."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", default="bench_logdir", help="workload folder (generated if missing)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--steps", type=int, default=25000)
    p.add_argument("--tags", type=int, default=4)
    p.add_argument("--make-logdir", default=MAKE_LOGDIR, help="path of make_logdir.py")
    p.add_argument("--repeat", type=int, default=3, help="timings per figure (the fastest is printed)")
    args = p.parse_args()
    if not os.path.isdir(args.logdir):
        subprocess.run(
            [
                sys.executable,
                args.make_logdir,
                args.logdir,
                "--runs",
                str(args.runs),
                "--steps",
                str(args.steps),
                "--tags",
                str(args.tags),
            ],
            check=True,
        )
    t0 = time.perf_counter()
    runs = read_logdir(args.logdir)
    read_s = time.perf_counter() - t0
    points = sum(r.num_points for r in runs.values())
    analyze_s = best_of(lambda: audit(runs), args.repeat)
    print(f"workload: {len(runs)} runs, {points:,} scalars")
    print(f"read:    {read_s:7.2f} s  ({read_s / points * 1e9:6.0f} ns/scalar)")
    print(f"analyze: {analyze_s:7.2f} s  ({analyze_s / points * 1e9:6.0f} ns/scalar)")
    print(f"analyze / read: {analyze_s / read_s:.2f}   end to end: {read_s + analyze_s:.2f} s")
    print("linearity (analysis of runs cut to a fraction of their points):")
    for frac in (0.125, 0.25, 0.5, 1.0):
        part = {n: cut(r, frac) for n, r in runs.items()}
        n_pts = sum(r.num_points for r in part.values())
        s = best_of(lambda part=part: audit(part), args.repeat)
        print(f"  {frac:5.3f}: {n_pts:>10,} scalars  {s:6.3f} s  {s / n_pts * 1e9:6.0f} ns/scalar")
    return 0


if __name__ == "__main__":
    sys.exit(main())
