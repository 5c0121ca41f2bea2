"""Run page (``/run/<id>``): curves with findings drawn, and beside them the verdict, evidence,
explanation, fix and hyperparameters. An LR range test also gets loss vs LR.

`render` is a plain function of a `Snapshot` and a run id (tested directly); the callback wires it.
"""

from __future__ import annotations

import os
import time

import dash
from dash import Input, Output, dcc, html

from lrdoctor.analyzers import is_range_test
from lrdoctor.dashboard import ids, summary
from lrdoctor.dashboard.data import RunEntry, RunStore, Snapshot
from lrdoctor.dashboard.figures import (
    SEVERITY_COLORS,
    VERDICT_COLORS,
    VERDICT_LABELS,
    empty_figure,
    range_test_figure,
    run_figure,
)


def layout() -> html.Div:
    """The run page skeleton; the router puts the run id (a string from the URL) in `ids.RUN_ID`."""
    return html.Div(
        className="runpage",
        children=[
            dcc.Store(id=ids.RUN_ID, data=""),
            html.H2(id=ids.RUN_TITLE, className="runtitle"),
            html.Div(
                className="runbody",
                children=[
                    html.Div(
                        className="plots",
                        children=[
                            html.Div(id=ids.RUN_RANGE_BOX),
                            dcc.Loading(dcc.Graph(id=ids.RUN_GRAPH, config={"displaylogo": False})),
                        ],
                    ),
                    html.Aside(id=ids.RUN_SIDE, className="side"),
                ],
            ),
        ],
    )


def render(store: RunStore, snap: Snapshot, run_id: object, now: float | None = None) -> tuple:
    """Everything the run page shows for ``run_id``.

    Returns:
        (title, figure, side panel children, range-test box children). The box holds a fresh
        loss-vs-LR graph for an LR range test (mounted visible, so plotly sizes it to the
        page), else nothing. An unknown id gives a "no such run" title and an empty figure.
    """
    entry = snap.entry(run_id)
    if entry is None and not run_id:  # the run page is not shown
        return "", empty_figure(""), [], []
    if entry is None:
        note = (
            "reading logdir..." if not snap.loaded else f"No run with id {str(run_id)[:40]!r} in this logdir."
        )
        return (
            note,
            empty_figure(note),
            [dcc.Link("Back to the overview", href="/")],
            [],
        )
    findings = entry.report.findings if entry.report is not None else ()
    fig = run_figure(entry.run, findings)
    range_box = []
    if is_range_test(entry.run):
        graph = dcc.Graph(
            id=ids.RUN_RANGE_GRAPH, figure=range_test_figure(entry.run), config={"displaylogo": False}
        )
        range_box = [graph]
    live = store.is_live(entry, time.time() if now is None else now)
    title = [entry.name, html.Span(" live", className="live")] if live else entry.name
    return title, fig, side_panel(entry), range_box


def verdict_badge(entry: RunEntry) -> html.Span:
    """The coloured verdict badge of a run."""
    key = summary.verdict_key(entry)
    return html.Span(
        VERDICT_LABELS.get(key, key),
        className="badge verdict",
        style={"backgroundColor": VERDICT_COLORS.get(key, "#57606a")},
    )


def side_panel(entry: RunEntry) -> list:
    """Verdict, findings (explanation, evidence, fix), hyperparameters and read problems."""
    out: list = [
        html.Div(
            className="verdictline",
            children=[verdict_badge(entry)]
            + (
                [html.Span(f"confidence {entry.report.confidence:.0%}", className="confidence")]
                if entry.report is not None
                else []
            ),
        )
    ]
    if entry.report is None:
        out.append(html.P(entry.error, className="error"))
    else:
        if not entry.report.findings:
            out.append(html.P("No findings: nothing in these curves points at an LR problem."))
        for f in entry.report.findings:
            color = SEVERITY_COLORS.get(f.severity.value, "#57606a")
            window = f"steps {f.steps[0]}-{f.steps[1]}" if f.steps[1] > f.steps[0] else f"step {f.step}"
            out.append(
                html.Section(
                    className="finding",
                    style={"borderLeftColor": color},
                    children=[
                        html.H4(
                            [
                                html.Span(
                                    f.severity.value, className="severity", style={"backgroundColor": color}
                                ),
                                f" {f.code} ",
                                html.Small(f"({f.signal}, {window})"),
                            ]
                        ),
                        html.P(f.message, className="message"),
                        html.P([html.Strong("Fix: "), f.fix], className="fix") if f.fix else None,
                        _kv_table(f.evidence, "evidence") if f.evidence else None,
                    ],
                )
            )
    out.append(html.H3("Hyperparameters"))
    out.append(
        _kv_table(entry.run.hparams, "hparams")
        if entry.run.hparams
        else html.P("none recorded", className="muted")
    )
    out.append(html.H3("Files"))
    out.append(html.Ul([html.Li(html.Code(os.path.basename(p))) for p in entry.run.files]))
    if entry.run.warnings:
        out.append(html.H3(f"Read problems ({len(entry.run.warnings)})"))
        out.append(html.Ul([html.Li(html.Code(w)) for w in entry.run.warnings[:50]]))
    return out


def _kv_table(d: dict, class_name: str) -> html.Table:
    return html.Table(
        className=f"kv {class_name}",
        children=[html.Tr([html.Th(str(k)), html.Td(summary.fmt_number(v))]) for k, v in sorted(d.items())],
    )


def register_callbacks(app: dash.Dash, store: RunStore) -> None:
    """Wire the run page to the store (it redraws when the store version changes)."""

    @app.callback(
        Output(ids.RUN_TITLE, "children"),
        Output(ids.RUN_GRAPH, "figure"),
        Output(ids.RUN_SIDE, "children"),
        Output(ids.RUN_RANGE_BOX, "children"),
        Input(ids.VERSION, "data"),
        Input(ids.RUN_ID, "data"),
    )
    def update_run(_version: int, run_id: str) -> tuple:
        return render(store, store.snapshot(), run_id)
