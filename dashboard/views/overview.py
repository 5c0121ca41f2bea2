"""Overview page: every run in one sortable, filterable table, counts per verdict on top.

`table_rows`, `filter_rows`, `verdict_counts` and `problems` are plain functions of a
`Snapshot` (tested directly); the callbacks only wire them to the page.
"""

from __future__ import annotations

import math
import time

import dash
from dash import Input, Output, dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from lrdoctor.dashboard import ids, summary
from lrdoctor.dashboard.data import RunStore, Snapshot
from lrdoctor.dashboard.figures import VERDICT_COLORS, VERDICT_LABELS
from lrdoctor.dashboard.views import compare

# Read problems listed on the page at most (the rest are counted).
MAX_PROBLEMS_SHOWN = 200
PAGE_SIZE = 50

# 3 significant digits, exponent only when needed (LRs span decades; float32 LRs print long).
_SIG3 = Format(precision=3, scheme=Scheme.decimal_or_exponent)
COLUMNS = [
    {"id": "run", "name": "run", "presentation": "markdown"},
    {"id": "verdict", "name": "verdict"},
    {"id": "top_finding", "name": "top finding"},
    {"id": "fix", "name": "fix"},
    {"id": "lr_initial", "name": "LR initial", "type": "numeric", "format": _SIG3},
    {"id": "lr_final", "name": "LR final", "type": "numeric", "format": _SIG3},
    {"id": "optimizer", "name": "optimizer"},
    {"id": "batch_size", "name": "batch", "type": "numeric"},
    {"id": "model_kind", "name": "model"},
    {"id": "steps", "name": "steps", "type": "numeric"},
    {"id": "final_loss", "name": "final loss", "type": "numeric", "format": _SIG3},
    {"id": "last_update", "name": "last update"},
    {"id": "live", "name": "live"},
]
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|"})


def layout() -> html.Div:
    """The overview page skeleton (filled by the callbacks)."""
    return html.Div(
        className="overview",
        children=[
            html.Div(id=ids.OVERVIEW_COUNTS, className="counts"),
            html.Div(
                className="filters",
                children=[
                    dcc.Dropdown(
                        id=ids.OVERVIEW_VERDICT,
                        multi=True,
                        placeholder="verdict...",
                        className="filter",
                        options=[{"label": VERDICT_LABELS[v], "value": v} for v in VERDICT_LABELS],
                    ),
                    dcc.Dropdown(
                        id=ids.OVERVIEW_CODE, multi=True, placeholder="finding...", className="filter"
                    ),
                    dcc.Input(
                        id=ids.OVERVIEW_TEXT,
                        type="search",
                        placeholder="search runs, findings, fixes...",
                        debounce=True,
                        className="filter text",
                    ),
                    dcc.Link(
                        "Compare selected runs",
                        id=ids.OVERVIEW_COMPARE_LINK,
                        href="/compare",
                        className="button compare-link",
                    ),
                ],
            ),
            dash_table.DataTable(
                id=ids.OVERVIEW_TABLE,
                columns=COLUMNS,
                data=[],
                sort_action="native",
                filter_action="native",
                page_action="native",
                page_size=PAGE_SIZE,
                row_selectable="multi",
                selected_row_ids=[],
                markdown_options={"link_target": "_self"},
                tooltip_duration=None,
                style_table={"overflowX": "auto"},
                style_cell={
                    "textAlign": "left",
                    "padding": "6px 10px",
                    "fontSize": "16px",
                    "whiteSpace": "normal",
                    "height": "auto",
                    "maxWidth": "420px",
                },
                style_header={"fontWeight": "bold", "backgroundColor": "#eaeef2"},
                style_cell_conditional=[
                    {"if": {"column_id": "fix"}, "minWidth": "300px"},
                    {"if": {"column_id": "last_update"}, "minWidth": "175px"},
                ],
                style_data_conditional=[
                    {
                        "if": {"filter_query": f'{{verdict_key}} = "{key}"', "column_id": "verdict"},
                        "backgroundColor": color,
                        "color": "white",
                        "fontWeight": "bold",
                    }
                    for key, color in VERDICT_COLORS.items()
                ]
                + [
                    {
                        "if": {"filter_query": '{live} = "live"', "column_id": "live"},
                        "color": VERDICT_COLORS["healthy"],
                        "fontWeight": "bold",
                    }
                ],
            ),
            html.Div(id=ids.OVERVIEW_PROBLEMS, className="problems"),
        ],
    )


def _md_link(text: str, href: str) -> str:
    return f"[{text.translate(_MD_SPECIAL)}]({href})"


def _num(x: float | None) -> float | None:
    """Tables sort numbers; NaN/inf cannot travel as JSON, so they become blank."""
    return x if x is None or math.isfinite(x) else None


def table_rows(store: RunStore, snap: Snapshot, now: float | None = None) -> list[dict]:
    """One table row per run (full facts; filtering is `filter_rows`)."""
    now = time.time() if now is None else now
    rows = []
    for e in snap.entries:
        hp = e.run.hparams
        key = summary.verdict_key(e)
        fix = summary.top_fix(e)
        loss = summary.final_loss(e)
        rows.append(
            {
                "id": e.id,
                "name": e.name,
                "run": _md_link(e.name, f"/run/{e.id}"),
                "verdict_key": key,
                "verdict": VERDICT_LABELS.get(key, key),
                "confidence": summary.confidence(e),
                "top_finding": summary.top_code(e),
                "codes": " ".join(summary.codes(e)),
                "fix": summary.short_fix(fix),
                "fix_full": fix,
                "lr_initial": summary.lr_initial(e),
                "lr_final": summary.lr_final(e),
                "optimizer": str(hp.get("optimizer") or ""),
                "batch_size": hp.get("batch_size"),
                "model_kind": str(hp.get("model_kind") or ""),
                "steps": summary.last_step(e),
                "final_loss": _num(loss),
                "final_loss_text": summary.fmt_number(loss),
                "last_update": summary.when(e.run.last_write),
                "live": "live" if store.is_live(e, now) else "",
            }
        )
    return rows


def filter_rows(
    rows: list[dict],
    verdicts: list[str] | None = None,
    codes: list[str] | None = None,
    text: str | None = None,
) -> list[dict]:
    """Rows matching every filter given: any of ``verdicts``, any of ``codes``, and ``text``.

    ``text`` matches (case-insensitively) the run name, any finding code, the fix, the
    optimizer or the model kind.
    """
    out = rows
    if verdicts:
        out = [r for r in out if r["verdict_key"] in verdicts]
    if codes:
        out = [r for r in out if set(r["codes"].split()) & set(codes)]
    needle = (text or "").strip().lower()
    if needle:
        out = [
            r
            for r in out
            if needle
            in " ".join((r["name"], r["codes"], r["fix_full"], r["optimizer"], r["model_kind"])).lower()
        ]
    return out


def verdict_counts(snap: Snapshot) -> dict[str, int]:
    """Runs per verdict key, in the order of `VERDICT_LABELS` (keys with no run left out)."""
    keys = [summary.verdict_key(e) for e in snap.entries]
    return {k: keys.count(k) for k in VERDICT_LABELS if k in keys}


def counts_bar(store: RunStore, snap: Snapshot) -> list:
    """The verdict badges at the top, or the loading state before the first read finished."""
    if not snap.loaded:
        scan = store.scan()
        return [
            html.Div(
                className="loading",
                children=[
                    html.Span(className="spinner"),
                    f"Reading {scan.files} event files ({scan.bytes / 1e6:.1f} MB) from {store.path}... "
                    "the table appears when the first read finishes.",
                ],
            )
        ]
    if not snap.entries:
        return [
            html.Div(
                className="empty",
                children=f"No runs in {store.path} yet (no *tfevents* files). "
                "New runs appear here as they are written.",
            )
        ]
    badges = [html.Span(f"{len(snap.entries)} runs", className="total")]
    if snap.pending:
        badges.append(
            html.Span(
                [html.Span(className="spinner"), f"reading {snap.pending} more run folders..."],
                className="loading",
            )
        )
    for key, n in verdict_counts(snap).items():
        badges.append(
            html.Span(
                f"{VERDICT_LABELS[key]}: {n}",
                className="badge",
                id=f"count-{key}",
                style={"backgroundColor": VERDICT_COLORS[key]},
            )
        )
    return badges


def problems(snap: Snapshot) -> list:
    """The read problems (bad files) and analysis failures, one line each."""
    lines = list(snap.warnings) + [e.error for e in snap.entries if e.error]
    if not lines:
        return []
    shown = lines[:MAX_PROBLEMS_SHOWN]
    more = len(lines) - len(shown)
    return [
        html.H3(f"Read problems ({len(lines)})"),
        html.Ul([html.Li(html.Code(line)) for line in shown]),
        *([html.P(f"... and {more} more")] if more else []),
    ]


def compare_href(selected_ids: list[int] | None) -> str:
    """The compare page URL for the selected run ids (in selection order)."""
    return "/compare" + compare.search_for(selected_ids or [])


def register_callbacks(app: dash.Dash, store: RunStore) -> None:
    """Wire the overview's filters, table and counts to the store."""

    @app.callback(
        Output(ids.OVERVIEW_TABLE, "data"),
        Output(ids.OVERVIEW_TABLE, "tooltip_data"),
        Output(ids.OVERVIEW_COUNTS, "children"),
        Output(ids.OVERVIEW_PROBLEMS, "children"),
        Output(ids.OVERVIEW_CODE, "options"),
        Input(ids.VERSION, "data"),
        Input(ids.OVERVIEW_VERDICT, "value"),
        Input(ids.OVERVIEW_CODE, "value"),
        Input(ids.OVERVIEW_TEXT, "value"),
    )
    def update_table(
        _version: int, verdicts: list[str] | None, codes: list[str] | None, text: str | None
    ) -> tuple:
        snap = store.snapshot()
        rows = filter_rows(table_rows(store, snap), verdicts, codes, text)
        tooltips = [
            {
                "fix": {"value": r["fix_full"], "type": "text"},
                "final_loss": {"value": r["final_loss_text"], "type": "text"},
            }
            for r in rows
        ]
        all_codes = sorted({c for e in snap.entries for c in summary.codes(e)})
        return (
            rows,
            tooltips,
            counts_bar(store, snap),
            problems(snap),
            [{"label": c, "value": c} for c in all_codes],
        )

    @app.callback(Output(ids.OVERVIEW_COMPARE_LINK, "href"), Input(ids.OVERVIEW_TABLE, "selected_row_ids"))
    def update_compare_link(selected: list[int] | None) -> str:
        return compare_href(selected)
