"""Pure plotly figure builders: a run's curves with its findings drawn, LR range tests, overlays.

Used by the views and by `export.py`, so the page and the exported report draw the same thing.
Nothing here reads files or calls the analyzers: input is a `Run` (full resolution) and the
findings of its report.

Curves are downsampled for the browser by `downsample` (min and max of each bucket, so spikes
survive), and non-finite points are never dropped silently: the first NaN/inf of each curve
gets a marker and a label.

Any `Finding` is drawn from its fields alone, on the row of its ``signal``: its ``steps``
window is shaded when it spans more than one step, and a marker sits at its ``step`` on the
curve. A few codes get an extra mark where it says more than the window (`_TREND_CODES`: the
fitted loss trend over the window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lrdoctor.analyzers import Finding, Run, Series

# Points per curve sent to the browser; a bucket keeps its min and max, so this is ~2x buckets.
MAX_POINTS = 2000
# A positive curve spanning more than this ratio (max / min) is drawn on a log axis.
LOG_SPAN_RATIO = 30.0

VERDICT_COLORS = {
    "healthy": "#1a7f37",
    "lr_too_high": "#cf222e",
    "lr_too_low": "#b35900",
    "inconclusive": "#57606a",
    "error": "#8250df",
}
VERDICT_LABELS = {
    "healthy": "healthy",
    "lr_too_high": "LR too high",
    "lr_too_low": "LR too low",
    "inconclusive": "inconclusive",
    "error": "analysis failed",
}
SEVERITY_COLORS = {"error": "#cf222e", "warning": "#bf8700", "info": "#0969da"}
NONFINITE_COLOR = "#cf222e"
# Codes whose window is better shown with the fitted trend of the curve over it.
_TREND_CODES = frozenset({"slow_decrease"})
# Row titles of the run figure, top to bottom, and the signals each row draws.
_ROWS = (
    ("loss", ("loss", "val_loss")),
    ("gradient norm", ("grad_norm",)),
    ("learning rate", ("lr",)),
    ("accuracy", ("accuracy", "val_accuracy")),
)
_FONT = {"size": 15}


def downsample(
    steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a curve to at most ``max_points`` finite points, keeping every bucket's extremes.

    The finite points are cut into ``max_points // 2`` buckets of consecutive points; each
    bucket keeps its minimum and its maximum (in step order), and the first and last points
    are always kept. A single spike therefore survives any reduction. Non-finite points are
    left out (see `first_nonfinite`: the figure marks them separately).

    Args:
        steps: step of each point.
        values: value of each point (NaN/inf allowed).
        max_points: upper bound on the points returned (>= 4).

    Returns:
        (steps, values) of the kept finite points, in their original order.

    Raises:
        ValueError: if ``max_points`` < 4 or the arrays differ in length.

    Example:
        >>> s, v = downsample(np.arange(10_000), np.sin(np.arange(10_000)), 100)
        >>> len(s) <= 100
        True
    """
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length ({len(steps)} != {len(values)})")
    idx = np.flatnonzero(np.isfinite(values))
    if len(idx) <= max_points:
        return steps[idx], values[idx]
    buckets = (max_points - 2) // 2
    size = math.ceil(len(idx) / buckets)
    buckets = math.ceil(len(idx) / size)
    v = values[idx]
    pad = buckets * size - len(v)
    lo = np.concatenate([v, np.full(pad, np.inf)]).reshape(buckets, size).argmin(axis=1)
    hi = np.concatenate([v, np.full(pad, -np.inf)]).reshape(buckets, size).argmax(axis=1)
    base = np.arange(buckets) * size
    keep = np.unique(np.concatenate([[0, len(v) - 1], base + lo, base + hi]))
    return steps[idx[keep]], v[keep]


def first_nonfinite(series: Series) -> tuple[int, str] | None:
    """(step, "NaN" | "+inf" | "-inf") of the first non-finite point of a series, or None."""
    bad = np.flatnonzero(~np.isfinite(series.values))
    if len(bad) == 0:
        return None
    v = series.values[bad[0]]
    kind = "NaN" if np.isnan(v) else ("+inf" if v > 0 else "-inf")
    return int(series.steps[bad[0]]), kind


def axis_scale(log: bool) -> dict:
    """Axis settings for a log or linear scale; log axes label decades only (readable on a projector)."""
    return {"type": "log", "minorloglabels": "none"} if log else {"type": "linear"}


def wants_log(values: np.ndarray) -> bool:
    """True if a curve is positive and spans more than `LOG_SPAN_RATIO` (log axis helps)."""
    v = values[np.isfinite(values)]
    if len(v) < 2 or v.min() <= 0:
        return False
    return bool(v.max() / v.min() > LOG_SPAN_RATIO)


def _value_at(series: Series | None, step: int) -> float | None:
    """The last finite value at or before ``step`` (where to put a marker), or None."""
    if series is None or len(series) == 0:
        return None
    finite = np.isfinite(series.values)
    pos = np.searchsorted(series.steps, step, side="right")
    ok = np.flatnonzero(finite[:pos])
    if len(ok):
        return float(series.values[ok[-1]])
    after = np.flatnonzero(finite)
    return float(series.values[after[0]]) if len(after) else None


def _curves_of_row(run: Run, signals: Sequence[str]) -> list[tuple[str, Series]]:
    out = []
    for sig in signals:
        if sig == "lr":
            for group, s in run.lr_groups().items():
                out.append((f"lr {group}".strip(), s))
        elif run.signal(sig) is not None:
            out.append((sig, run.signal(sig)))
    return out


def run_figure(
    run: Run, findings: Sequence[Finding] = (), *, max_points: int = MAX_POINTS, height_px: int | None = None
) -> go.Figure:
    """Loss, gradient norm, LR (and accuracy) curves on a shared step axis, findings drawn.

    Rows without data are left out. A row uses a log y axis when its curves are positive and
    span more than `LOG_SPAN_RATIO`. Each curve's first non-finite point is marked with an
    ``x`` and labelled ("NaN at step 412").

    Args:
        run: the run, at full resolution.
        findings: what to draw on it (a report's findings).
        max_points: points per curve sent to the browser (see `downsample`).
        height_px: figure height; default grows with the number of rows.

    Returns:
        The figure (an empty one with a note if the run has none of these signals).
    """
    rows = [(title, curves) for title, sigs in _ROWS if (curves := _curves_of_row(run, sigs))]
    if not rows:
        return empty_figure(
            f"{run.name}: no loss, gradient norm, LR or accuracy curve found "
            f"(tags: {', '.join(sorted(run.scalars)) or 'none'})"
        )
    fig = make_subplots(
        rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=[t for t, _ in rows]
    )
    row_of_signal: dict[str, int] = {}
    series_of_signal: dict[str, Series] = {}
    for r, (_title, curves) in enumerate(rows, start=1):
        log = all(wants_log(s.values) for _, s in curves)
        for name, s in curves:
            key = "lr" if name.startswith("lr") else name
            row_of_signal.setdefault(key, r)
            series_of_signal.setdefault(key, s)
            xs, ys = downsample(s.steps, s.values, max_points)
            fig.add_trace(
                go.Scatter(x=xs, y=ys, name=name, mode="lines", line={"width": 2}, legendgroup=name),
                row=r,
                col=1,
            )
            bad = first_nonfinite(s)
            if bad is not None:
                _add_nonfinite_marker(fig, r, name, s, bad, log)
        fig.update_yaxes(**axis_scale(log), row=r, col=1)
    windows_per_row: dict[int, int] = {}
    for f in findings:
        _draw_finding(fig, f, row_of_signal, series_of_signal, windows_per_row)
    fig.update_xaxes(title_text="step", row=len(rows), col=1)
    fig.update_layout(
        height=height_px or 240 * len(rows) + 80,
        margin={"l": 70, "r": 30, "t": 40, "b": 50},
        font=_FONT,
        legend={"orientation": "h", "y": -0.08 if len(rows) > 2 else -0.2},
        hovermode="x unified",
        uirevision=run.name,  # keep the user's zoom across live updates
        template="plotly_white",
    )
    return fig


def _add_nonfinite_marker(
    fig: go.Figure, row: int, name: str, s: Series, bad: tuple[int, str], log: bool
) -> None:
    step, kind = bad
    y = _value_at(s, step)
    if y is None:  # the whole curve is non-finite: put the marker on an arbitrary baseline
        y = 1.0 if log else 0.0
    label = f"{kind} {name} at step {step}"
    fig.add_trace(
        go.Scatter(
            x=[step],
            y=[y],
            mode="markers+text",
            name=label,
            text=[label],
            textposition="middle left",
            textfont={"color": NONFINITE_COLOR, "size": 15},
            marker={"symbol": "x", "size": 16, "color": NONFINITE_COLOR, "line": {"width": 2}},
            hovertext=[label],
            hoverinfo="text",
        ),
        row=row,
        col=1,
    )
    fig.add_vline(x=step, line={"color": NONFINITE_COLOR, "dash": "dot", "width": 2}, row=row, col=1)


def _draw_finding(
    fig: go.Figure,
    f: Finding,
    row_of_signal: dict[str, int],
    series_of_signal: dict[str, Series],
    windows_per_row: dict[int, int],
) -> None:
    sig = f.signal if f.signal in row_of_signal else ("lr" if f.signal.startswith("lr") else "loss")
    row = row_of_signal.get(sig) or next(iter(row_of_signal.values()))
    series = series_of_signal.get(sig)
    color = SEVERITY_COLORS.get(getattr(f.severity, "value", str(f.severity)), "#57606a")
    first, last = int(f.steps[0]), int(f.steps[1])
    if last > first:
        # Labels of several windows on one row are stacked downwards so they do not overlap.
        stacked = windows_per_row.get(row, 0)
        windows_per_row[row] = stacked + 1
        fig.add_vrect(
            x0=first,
            x1=last,
            fillcolor=color,
            opacity=0.12,
            line_width=0,
            row=row,
            col=1,
            annotation_text=f.code,
            annotation_position="top left",
            annotation_yshift=-16 * stacked,
            annotation_font={"color": color, "size": 13},
        )
        if f.code in _TREND_CODES and series is not None:
            _add_trend(fig, series, first, last, row, color, f.code)
    y = _value_at(series, f.step)
    if y is not None:
        fig.add_trace(
            go.Scatter(
                x=[f.step],
                y=[y],
                mode="markers",
                name=f"{f.code} (step {f.step})",
                marker={
                    "symbol": "diamond",
                    "size": 14,
                    "color": color,
                    "line": {"width": 1, "color": "#000"},
                },
                hovertext=[f"{f.code} at step {f.step}: {f.message}"],
                hoverinfo="text",
            ),
            row=row,
            col=1,
        )


def _add_trend(fig: go.Figure, s: Series, first: int, last: int, row: int, color: str, code: str) -> None:
    """Least-squares line of log(value) vs step over the window (a straight line on a log axis)."""
    m = (s.steps >= first) & (s.steps <= last) & np.isfinite(s.values) & (s.values > 0)
    if m.sum() < 2:
        return
    x, y = s.steps[m].astype(np.float64), np.log(s.values[m])
    slope, intercept = np.polyfit(x, y, 1)
    xs = np.array([x[0], x[-1]])
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=np.exp(intercept + slope * xs),
            mode="lines",
            name=f"{code} trend",
            line={"color": color, "dash": "dash", "width": 3},
        ),
        row=row,
        col=1,
    )


def range_test_figure(
    run: Run, suggested_lr: float | None = None, *, max_points: int = MAX_POINTS
) -> go.Figure:
    """Loss against LR (log x axis) for an LR range test, with the suggested LR marked.

    Loss and LR points are paired by step (the last point of each step).

    Args:
        run: a run whose hparams say ``run_kind == "lr_range_test"``.
        suggested_lr: the LR to mark (default: ``run.hparams["suggested_lr"]``).
        max_points: points sent to the browser.

    Returns:
        The figure (an empty one with a note if the run lacks a loss or an LR curve).
    """
    loss, lr = run.signal("loss"), run.signal("lr")
    if loss is None or lr is None:
        return empty_figure(f"{run.name}: an LR range test needs both a loss and an LR curve")
    if suggested_lr is None:
        sl = run.hparams.get("suggested_lr")
        suggested_lr = float(sl) if isinstance(sl, (int, float)) and not isinstance(sl, bool) else None
    steps = np.intersect1d(loss.steps, lr.steps)
    # searchsorted 'right' - 1: the last point logged at each step
    x = lr.values[np.searchsorted(lr.steps, steps, side="right") - 1]
    y = loss.values[np.searchsorted(loss.steps, steps, side="right") - 1]
    ok = np.isfinite(x) & (x > 0)
    x, y = x[ok], y[ok]
    order = np.argsort(x, kind="stable")
    xs, ys = downsample(x[order], y[order], max_points)
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="loss", marker={"size": 4}))
    if suggested_lr is not None and suggested_lr > 0:
        fig.add_vline(x=suggested_lr, line={"color": VERDICT_COLORS["healthy"], "width": 3, "dash": "dash"})
        fig.add_annotation(
            x=math.log10(suggested_lr),
            y=1,
            yref="paper",
            showarrow=False,
            yanchor="bottom",
            text=f"suggested LR {suggested_lr:.3g}",
            font={"color": VERDICT_COLORS["healthy"]},
        )
    fig.update_xaxes(**axis_scale(True), title_text="learning rate")
    fig.update_yaxes(**axis_scale(wants_log(ys)), title_text="loss")
    fig.update_layout(
        height=420,
        margin={"l": 70, "r": 30, "t": 40, "b": 50},
        font=_FONT,
        template="plotly_white",
        title={"text": "LR range test: loss vs LR", "x": 0},
    )
    return fig


def compare_figure(
    runs: Sequence[Run], signal: str = "loss", *, by: str = "step", max_points: int = MAX_POINTS
) -> go.Figure:
    """Curves of several runs overlaid: ``signal`` on top, the LR below (unless it is the LR).

    Args:
        runs: the runs, drawn in this order.
        signal: "loss", "val_loss", "grad_norm", "lr", "accuracy" or "val_accuracy".
        by: x axis: "step", or "samples" (step x batch_size, the axis of the batch-size/LR
            scaling rule; runs without a known batch size are left out and named in the title).
        max_points: points per curve sent to the browser.

    Returns:
        The figure.

    Raises:
        ValueError: if ``by`` is not "step" or "samples".
    """
    if by not in ("step", "samples"):
        raise ValueError(f"by must be 'step' or 'samples', got {by!r}")
    if not runs:
        return empty_figure("pick runs to compare")
    signals = [signal] if signal == "lr" else [signal, "lr"]
    fig = make_subplots(
        rows=len(signals),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=signals,
        row_heights=[0.65, 0.35][: len(signals)],
    )
    palette = (
        "#0969da",
        "#cf222e",
        "#1a7f37",
        "#8250df",
        "#bf8700",
        "#1b7c83",
        "#bc4c00",
        "#6e7781",
        "#e85aad",
        "#116329",
    )
    skipped = []
    for i, run in enumerate(runs):
        scale = 1
        if by == "samples":
            bs = run.hparams.get("batch_size")
            if not isinstance(bs, int) or isinstance(bs, bool) or bs <= 0:
                skipped.append(run.name)
                continue
            scale = bs
        color = palette[i % len(palette)]
        for r, sig in enumerate(signals, start=1):
            s = run.signal(sig)
            if s is None:
                continue
            xs, ys = downsample(s.steps, s.values, max_points)
            fig.add_trace(
                go.Scatter(
                    x=xs * scale,
                    y=ys,
                    mode="lines",
                    name=run.name,
                    legendgroup=run.name,
                    showlegend=r == 1,
                    line={"color": color, "width": 2},
                ),
                row=r,
                col=1,
            )
            bad = first_nonfinite(s)
            if bad is not None:
                y = _value_at(s, bad[0])
                fig.add_trace(
                    go.Scatter(
                        x=[bad[0] * scale],
                        y=[0.0 if y is None else y],
                        mode="markers",
                        name=f"{bad[1]} {run.name} at step {bad[0]}",
                        showlegend=False,
                        marker={"symbol": "x", "size": 14, "color": color},
                        hovertext=[f"{bad[1]} {sig} at step {bad[0]}"],
                        hoverinfo="text",
                    ),
                    row=r,
                    col=1,
                )
    for r, sig in enumerate(signals, start=1):
        vals = [run.signal(sig).values for run in runs if run.signal(sig) is not None]
        log = bool(vals) and all(wants_log(v) for v in vals)
        fig.update_yaxes(**axis_scale(log), row=r, col=1)
    title = "samples seen (step x batch size)" if by == "samples" else "step"
    fig.update_xaxes(title_text=title, row=len(signals), col=1)
    note = f"no batch size known for: {', '.join(skipped)}" if skipped else ""
    fig.update_layout(
        height=620,
        margin={"l": 70, "r": 30, "t": 60 if note else 40, "b": 50},
        font=_FONT,
        template="plotly_white",
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.12},
        showlegend=True,
        title={"text": note, "x": 0, "font": {"size": 13}},
    )
    return fig


def empty_figure(note: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=_FONT)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=240, template="plotly_white", margin={"l": 20, "r": 20, "t": 20, "b": 20})
    return fig
