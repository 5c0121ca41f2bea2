"""Export the audit for a review meeting: one self-contained HTML file with the plots, or Markdown.

The HTML file inlines plotly.js once and draws every run with `figures.run_figure`, the same
builder the run page uses, so the file and the dashboard show the same thing; it opens offline.
Markdown is the analyzers' own audit report (`AuditResult.to_markdown`).
"""

from __future__ import annotations

import html
import os
import time

import plotly.offline

from lrdoctor.analyzers import is_range_test
from lrdoctor.dashboard import summary
from lrdoctor.dashboard.data import RunEntry, RunStore, Snapshot
from lrdoctor.dashboard.figures import (
    SEVERITY_COLORS,
    VERDICT_COLORS,
    VERDICT_LABELS,
    range_test_figure,
    run_figure,
)

# Points per curve in the exported file (smaller than on screen: a sweep has many runs).
EXPORT_MAX_POINTS = 800

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:17px;color:#1f2328;margin:24px;
max-width:1800px}
h1{font-size:28px}h2{font-size:22px;border-top:2px solid #d0d7de;padding-top:18px;margin-top:36px}
.badge{display:inline-block;color:#fff;font-weight:700;border-radius:6px;padding:2px 10px;margin-right:8px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;
vertical-align:top}th{background:#f6f8fa}.finding{border-left:6px solid;padding:4px 12px;margin:10px 0}
.fix{font-weight:600}code{font-size:15px}.muted{color:#57606a}
.runbody{display:flex;flex-direction:row-reverse;gap:20px;align-items:flex-start}.plots{flex:3;min-width:0}
.side{flex:2;min-width:320px;overflow-wrap:anywhere}
"""


class ExportError(Exception):
    """The report cannot be written (message names the file and the problem)."""


def report_markdown(store: RunStore) -> str:
    """The audit of the store's runs as Markdown (the analyzers' report)."""
    return store.audit_result().to_markdown()


def report_html(snap: Snapshot, logdir: str, *, max_points: int = EXPORT_MAX_POINTS) -> str:
    """The audit as one self-contained HTML page: summary table, then each run with its plots.

    Args:
        snap: the runs and their reports.
        logdir: the logdir path, for the title.
        max_points: points per curve in the plots.

    Returns:
        The HTML text (plotly.js inlined; no network needed to open it).
    """
    e = html.escape
    counts: dict[str, int] = {}
    for entry in snap.entries:
        key = summary.verdict_key(entry)
        counts[key] = counts.get(key, 0) + 1
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>lrdoctor audit: {e(logdir)}</title><style>{_CSS}</style>",
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>",
        f"<h1>lrdoctor audit</h1><p class='muted'>{e(logdir)}, {len(snap.entries)} runs, "
        f"written {e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>",
        "<p>"
        + "".join(
            f"<span class='badge' style='background:{VERDICT_COLORS[k]}'>{e(VERDICT_LABELS[k])}: {n}</span>"
            for k, n in counts.items()
        )
        + "</p>",
        _summary_table(snap),
    ]
    if snap.warnings:
        parts.append(
            f"<h2>Read problems ({len(snap.warnings)})</h2><ul>"
            + "".join(f"<li><code>{e(w)}</code></li>" for w in snap.warnings)
            + "</ul>"
        )
    for entry in snap.entries:
        parts.append(_run_section(entry, max_points))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_table(snap: Snapshot) -> str:
    e = html.escape
    rows = [
        "<table><tr><th>run</th><th>verdict</th><th>top finding</th><th>fix</th><th>LR initial</th>"
        "<th>optimizer</th><th>batch</th><th>final loss</th></tr>"
    ]
    for entry in snap.entries:
        key = summary.verdict_key(entry)
        rows.append(
            f"<tr><td><a href='#run-{entry.id}'>{e(entry.name)}</a></td>"
            f"<td><span class='badge' style='background:{VERDICT_COLORS[key]}'>"
            f"{e(VERDICT_LABELS[key])}</span></td>"
            f"<td>{e(summary.top_code(entry))}</td><td>{e(summary.top_fix(entry))}</td>"
            f"<td>{e(summary.fmt_number(summary.lr_initial(entry)))}</td>"
            f"<td>{e(str(entry.run.hparams.get('optimizer') or ''))}</td>"
            f"<td>{e(summary.fmt_number(entry.run.hparams.get('batch_size')))}</td>"
            f"<td>{e(summary.fmt_number(summary.final_loss(entry)))}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _run_section(entry: RunEntry, max_points: int) -> str:
    """A run's heading, then its plots beside its findings and hyperparameters (as on the run page)."""
    e = html.escape
    key = summary.verdict_key(entry)
    side = []
    if entry.report is None:
        side.append(f"<p>{e(entry.error)}</p>")
    else:
        side.append(f"<p class='muted'>confidence {entry.report.confidence:.0%}</p>")
        for f in entry.report.findings:
            color = SEVERITY_COLORS.get(f.severity.value, "#57606a")
            evidence = ", ".join(f"{k} = {summary.fmt_number(v)}" for k, v in f.evidence.items())
            side.append(
                f"<div class='finding' style='border-color:{color}'><b>{e(f.severity.value)}: "
                f"{e(f.code)}</b> <span class='muted'>({e(f.signal)}, step {f.step})</span>"
                f"<p>{e(f.message)}</p>"
                + (f"<p class='fix'>Fix: {e(f.fix)}</p>" if f.fix else "")
                + (f"<p class='muted'>{e(evidence)}</p>" if evidence else "")
                + "</div>"
            )
    if entry.run.hparams:
        side.append(
            "<details><summary>hyperparameters</summary><table>"
            + "".join(
                f"<tr><th>{e(str(k))}</th><td>{e(summary.fmt_number(v))}</td></tr>"
                for k, v in sorted(entry.run.hparams.items())
            )
            + "</table></details>"
        )
    plots = []
    if is_range_test(entry.run):
        plots.append(
            range_test_figure(entry.run, max_points=max_points).to_html(
                full_html=False, include_plotlyjs=False, div_id=f"range-{entry.id}"
            )
        )
    findings = entry.report.findings if entry.report is not None else ()
    plots.append(
        run_figure(entry.run, findings, max_points=max_points).to_html(
            full_html=False, include_plotlyjs=False, div_id=f"plot-{entry.id}"
        )
    )
    return (
        f"<h2 id='run-{entry.id}'>{e(entry.name)} <span class='badge' style='background:"
        f"{VERDICT_COLORS[key]}'>{e(VERDICT_LABELS[key])}</span></h2>\n"
        # The side comes first so it exists when the plots' inline scripts measure their width;
        # row-reverse still shows the plots on the left.
        f"<div class='runbody'><div class='side'>{''.join(side)}</div>"
        f"<div class='plots'>{''.join(plots)}</div></div>"
    )


def write_report(
    logdir: str | os.PathLike, output: str | os.PathLike, tag_overrides: dict[str, str] | None = None
) -> str:
    """Read a logdir, audit it, and write the report: Markdown if ``output`` ends in .md, else HTML.

    Args:
        logdir: a TensorBoard logdir.
        output: the file to write (its folder must exist).
        tag_overrides: ``{signal: tag}`` choices passed to the reader.

    Returns:
        The absolute path written.

    Raises:
        LogdirError: if ``logdir`` cannot be read.
        ExportError: if ``output`` cannot be written.
    """
    store = RunStore(logdir, tag_overrides=tag_overrides)
    snap = store.refresh()
    out = os.path.abspath(os.fspath(output))
    text = report_markdown(store) if out.lower().endswith(".md") else report_html(snap, store.path)
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise ExportError(f"{out}: cannot write ({err.strerror or err})") from None
    return out
