#!/usr/bin/env python3
"""Reader speed and memory: lrdoctor vs TensorBoard's EventAccumulator vs tbparse, same workload.

The workload is built once with ``../shared/bench/make_logdir.py`` (default: 20 runs x 25,000
steps x 4 tags = 2,000,000 scalars, ~102 MB, the torch ``add_scalar`` record layout) and cached
in a temporary folder. Every reader is timed end to end (files -> every scalar in memory) on a
warm page cache, one after the other in this process; memory is measured in a fresh child
process so that nothing else is resident.

Printed, in one run:

- scalars/s for lrdoctor (one process per CPU, and one process; best of 3), for EventAccumulator with
  ``size_guidance={'scalars': 0}`` (keep every point), and for tbparse; the ratios; and scalars
  per CPU-second (the per-core figure, less sensitive to a machine shared with other jobs);
- lrdoctor's resident memory per scalar held (RSS after the read minus RSS before, over the
  scalars held) and its peak (max RSS minus RSS before);
- the time of a second, incremental refresh of the unchanged logdir, and its ratio to the first.

Usage::

    python benchmarks/bench_reader.py                      # the full workload (a few minutes)
    python benchmarks/bench_reader.py --runs 4 --steps 5000  # quick
    python benchmarks/bench_reader.py --skip-baselines     # lrdoctor only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_LOGDIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "bench" / "make_logdir.py"


def workload(runs: int, steps: int, tags: int, cache: Path) -> Path:
    """The cached logdir for these sizes, built with make_logdir.py if absent."""
    out = cache / f"runs{runs}_steps{steps}_tags{tags}_seed0"
    if not out.is_dir():
        if not MAKE_LOGDIR.is_file():
            sys.exit(f"{MAKE_LOGDIR}: not found (shared/ is expected beside the repository)")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        cmd = [sys.executable, str(MAKE_LOGDIR), str(tmp), "--runs", str(runs), "--steps", str(steps)]
        subprocess.run([*cmd, "--tags", str(tags), "--force"], check=True)
        tmp.rename(out)
    return out


def warm_page_cache(logdir: Path) -> int:
    """Read every file once so that no reader pays for the disk. Returns the bytes."""
    total = 0
    for p in logdir.rglob("*tfevents*"):
        total += len(p.read_bytes())
    return total


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def timed(fn, repeat: int = 1) -> tuple[int, float, float]:
    """``(fn(), wall seconds, CPU seconds)`` of the fastest of `repeat` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), cpu_seconds()
        n = fn()
        best = min(best, (time.perf_counter() - w0, cpu_seconds() - c0))
    return n, *best


def read_lrdoctor(logdir: Path, workers: int | None) -> int:
    from lrdoctor.analyzers import read_logdir

    return sum(r.num_points for r in read_logdir(logdir, workers=workers).values())


def read_event_accumulator(logdir: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    n = 0
    for run in sorted(p for p in logdir.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        n += sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    return n


def read_tbparse(logdir: Path) -> int:
    from tbparse import SummaryReader

    return len(SummaryReader(str(logdir)).scalars)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """High-water RSS since the last `reset_peak_rss` (Linux VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Forget the import-time peak, so the peak measured is the read's (Linux clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak may include imports


def memory_child(logdir: str) -> None:
    """Run in a fresh process: read the logdir, print RSS figures as JSON."""
    import numpy  # noqa: F401  (imports are not what we measure)

    from lrdoctor.analyzers import Logdir

    reset_peak_rss()
    before = rss_bytes()
    ld = Logdir(logdir, workers=1)  # worker processes' memory would not show in this RSS
    runs = ld.refresh()
    after = rss_bytes()
    peak = peak_rss_bytes()
    held = sum(s.nbytes for r in runs.values() for s in r.scalars.values())
    n = sum(r.num_points for r in runs.values())
    print(json.dumps({"before": before, "after": after, "peak": peak, "held": held, "scalars": n}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=25_000)
    ap.add_argument("--tags", type=int, default=4)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lrdoctor-bench")
    ap.add_argument("--skip-baselines", action="store_true", help="time lrdoctor only")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    logdir = workload(args.runs, args.steps, args.tags, args.cache)
    size = warm_page_cache(logdir)
    expected = args.runs * args.steps * args.tags
    print(
        f"workload: {logdir} ({args.runs} runs x {args.steps} steps x {args.tags} tags = "
        f"{expected:,} scalars, {size / 1e6:.1f} MB); {os.cpu_count()} CPUs"
    )

    results: dict[str, tuple[float, float]] = {}  # name -> (scalars/s, scalars per CPU-second)

    def report(name: str, n: int, wall: float, cpu: float) -> None:
        if n != expected:
            print(f"  !! {name} returned {n:,} scalars, expected {expected:,}")
        results[name] = (n / wall, n / cpu)
        print(
            f"{name:<32} {wall:7.2f} s  {n / wall / 1e6:6.3f} M scalars/s   "
            f"(CPU {cpu:6.2f} s: {n / cpu / 1e6:6.3f} M scalars per CPU-second)"
        )

    read_lrdoctor(logdir, 1)  # imports, and the forked workers' code pages, out of the way
    # Ours take seconds: best of 3 (the machine may be shared); the baselines take minutes: one run.
    report("lrdoctor (parallel processes)", *timed(lambda: read_lrdoctor(logdir, os.cpu_count()), 3))
    report("lrdoctor (one process)", *timed(lambda: read_lrdoctor(logdir, 1), 3))
    if not args.skip_baselines:
        report("EventAccumulator (scalars: 0)", *timed(lambda: read_event_accumulator(logdir)))
        report("tbparse", *timed(lambda: read_tbparse(logdir)))
        for base in ("EventAccumulator (scalars: 0)", "tbparse"):
            for ours in ("lrdoctor (parallel processes)", "lrdoctor (one process)"):
                (w, c), (bw, bc) = results[ours], results[base]
                print(f"ratio {ours} / {base}: {w / bw:.1f}x scalars/s, {c / bc:.1f}x per CPU-second")

    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(logdir)], check=True, capture_output=True, text=True
    )
    m = json.loads(child.stdout.strip().splitlines()[-1])
    n = m["scalars"]
    print(
        f"memory (one process): {(m['after'] - m['before']) / n:.1f} B resident per scalar held, "
        f"peak {(m['peak'] - m['before']) / n:.1f} B per scalar, arrays {m['held'] / n:.1f} B per scalar "
        f"({n:,} scalars; RSS {m['before'] / 1e6:.0f} -> {m['after'] / 1e6:.0f} MB)"
    )

    from lrdoctor.analyzers import Logdir

    ld = Logdir(logdir)
    _, first, _ = timed(lambda: len(ld.refresh()))
    _, second, _ = timed(lambda: len(ld.refresh()))
    print(
        f"incremental: first refresh {first:.3f} s, second (unchanged) {second * 1e3:.2f} ms "
        f"= {100 * second / first:.3f}% of the first"
    )


if __name__ == "__main__":
    main()
