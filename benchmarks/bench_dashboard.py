#!/usr/bin/env python3
"""Dashboard speed on a big logdir, driving the real app over HTTP like a browser does.

Workload: 500 runs x 10,000 steps x 4 tags (20 M scalars, ~1 GB) from
``../shared/bench/make_logdir.py``, generated once into the git-ignored ``bench_logdir_<runs>x<steps>/``.

Measures (wall clock, this machine):
  - page shell served: first ``GET /`` answered after the app was created;
  - overview first rows: app created -> the first part of the overview table arrives from
    ``_dash-update-component`` (polling the header tick as the page does, every 0.2 s here; the
    first read of a big logdir is published in parts);
  - overview complete: every run read and audited (with the cross-run checks);
  - run page: router + run-page callbacks for sampled runs (median / p95 / max), and the bytes sent;
  - compare page: 5 runs overlaid;
  - a refresh when nothing changed, and the process's RSS at the end;
  - with --export, the Export HTML button (every run's plots in one file).

Example:
    python benchmarks/bench_dashboard.py                  # 500 x 10,000 (the issue's target)
    python benchmarks/bench_dashboard.py --runs 50 --steps 2000
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the HTTP payload helper shared with the tests

import dashboard_http  # noqa: E402

from lrdoctor.dashboard.app import build_app  # noqa: E402
from lrdoctor.dashboard.data import RunStore  # noqa: E402

MAKE_LOGDIR = REPO.parent / "shared" / "bench" / "make_logdir.py"


def ensure_logdir(path: Path, runs: int, steps: int, tags: int) -> Path:
    """Generate the workload once (it is deterministic), reuse it afterwards."""
    if not path.is_dir():
        print(f"generating {path} ({runs} runs x {steps} steps x {tags} tags) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(MAKE_LOGDIR),
                str(path),
                "--runs",
                str(runs),
                "--steps",
                str(steps),
                "--tags",
                str(tags),
            ],
            check=True,
        )
    return path


def call(session: requests.Session, base: str, app, output_id: str, values: dict, changed=None) -> tuple:
    """POST one callback; returns (outputs, seconds, bytes of the response)."""
    payload = dashboard_http.callback_payload(app, output_id, values, changed)
    t0 = time.perf_counter()
    r = session.post(f"{base}/_dash-update-component", json=payload, timeout=120)
    dt = time.perf_counter() - t0
    r.raise_for_status()
    return dashboard_http.outputs_of(r.json()), dt, len(r.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=4)
    ap.add_argument("--logdir", type=Path, help="use this logdir instead of generating one")
    ap.add_argument("--samples", type=int, default=20, help="run pages to render (default 20)")
    ap.add_argument(
        "--export", action="store_true", help="also time the Export HTML button (every run plotted)"
    )
    args = ap.parse_args()
    logdir = args.logdir or ensure_logdir(
        REPO / f"bench_logdir_{args.runs}x{args.steps}", args.runs, args.steps, args.tags
    )
    proc = psutil.Process()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    t_start = time.perf_counter()
    store = RunStore(logdir)
    store.load_in_background()
    app = build_app(store)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.port}"
    s = requests.Session()
    s.get(f"{base}/", timeout=30).raise_for_status()
    t_shell = time.perf_counter() - t_start

    def wait_for_table(version: int, complete: bool) -> tuple:
        """Poll as the page's dcc.Interval does until the page holds a first (or the complete) version."""
        while True:
            out, _, _ = call(
                s, base, app, "store-version", {"tick.n_intervals": 1, "store-version.data": version}
            )
            if "store-version" in out:
                version = out["store-version"]["data"]
            # A logdir read in one part is complete at its first version: no newer one will come.
            snap = store.snapshot()
            if version and (not complete or (version == snap.version and not snap.pending)):
                break
            time.sleep(0.2)
        out, dt, nbytes = call(s, base, app, "overview-table", {"store-version": version})
        return version, out["overview-table"]["data"], dt, nbytes

    # The first read is published in parts: the table fills in while the rest is read.
    version, first_rows, _, _ = wait_for_table(0, complete=False)
    t_first = time.perf_counter() - t_start
    version, rows, dt_table, table_bytes = wait_for_table(version, complete=True)
    t_overview = time.perf_counter() - t_start
    snap = store.snapshot()

    rng = random.Random(0)
    picks = rng.sample(list(snap.entries), min(args.samples, len(snap.entries)))
    page_s, page_bytes = [], []
    for e in picks:
        t0 = time.perf_counter()
        _, _, b1 = call(
            s,
            base,
            app,
            "page-run",
            {"url.pathname": f"/run/{e.id}", "store-version": version},
            changed=["url.pathname"],
        )
        out, _, b2 = call(s, base, app, "run-graph", {"store-version": version, "run-id": str(e.id)})
        page_s.append(time.perf_counter() - t0)
        page_bytes.append(b1 + b2)
        assert out["run-title"]["children"] in (e.name, [e.name, out["run-title"]["children"][1]])
    cmp_ids = [str(e.id) for e in picks[:5]]
    _, dt_compare, cmp_bytes = call(
        s,
        base,
        app,
        "compare-graph",
        {
            "compare-pick": cmp_ids,
            "compare-signal": "loss",
            "compare-x": "step",
            "store-version": version,
            "url.pathname": "/compare",
        },
    )
    t0 = time.perf_counter()
    store.refresh()
    dt_refresh = time.perf_counter() - t0
    if args.export:
        _, dt_export, export_bytes = call(
            s, base, app, "download", {"export-html": 1}, changed=["export-html.n_clicks"]
        )
    server.shutdown()

    n_points = snap.num_points
    print(
        f"logdir: {logdir} ({len(snap.entries)} runs, {n_points:,} points, "
        f"{sum(f.stat().st_size for f in Path(logdir).rglob('*tfevents*')) / 1e6:,.0f} MB)"
    )
    print(f"page shell served:            {t_shell:7.2f} s after start")
    print(f"overview first rows:          {t_first:7.2f} s after start ({len(first_rows)} runs shown)")
    print(
        f"overview complete (all runs):  {t_overview:7.2f} s after start "
        f"(first refresh {snap.read_s:.2f} s, of which audit {snap.audit_s:.2f} s; "
        f"table callback {dt_table * 1000:.0f} ms, "
        f"{len(rows)} rows, {table_bytes / 1e3:,.0f} kB)"
    )
    ms = sorted(x * 1000 for x in page_s)
    print(
        f"run page ({len(ms)} runs, router + run callbacks): median {statistics.median(ms):.0f} ms, "
        f"p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms, max {ms[-1]:.0f} ms, "
        f"{statistics.median(page_bytes) / 1e3:,.0f} kB"
    )
    print(f"compare page (5 runs):        {dt_compare * 1000:7.0f} ms, {cmp_bytes / 1e3:,.0f} kB")
    print(f"refresh, nothing changed:     {dt_refresh * 1000:7.0f} ms")
    if args.export:
        print(f"export HTML (all runs):       {dt_export:7.2f} s, {export_bytes / 1e6:,.1f} MB")
    print(f"RSS at the end:               {proc.memory_info().rss / 1e6:7.0f} MB ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
