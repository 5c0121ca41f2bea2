"""Compare page (``/compare?runs=3,7``): curves overlaid, verdicts and hyperparameters side by side.

The selection lives in the URL, so a link can be pasted into a chat. Ids in the URL that are
not ids of this store are ignored (they are never read as paths).

`fact_rows` and `render` are plain functions (tested directly); the callback wires them.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, dcc, html

from lrdoctor.dashboard import ids, summary
from lrdoctor.dashboard.data import RunEntry, RunStore, Snapshot
from lrdoctor.dashboard.figures import compare_figure

SIGNAL_CHOICES = ("loss", "val_loss", "grad_norm", "lr", "accuracy", "val_accuracy")
# Runs overlaid at most (more makes the plot unreadable and slow).
MAX_COMPARED = 12


def layout() -> html.Div:
    """The compare page skeleton; the router fills the run choices and the selection from the URL."""
    return html.Div(
        className="comparepage",
        children=[
            html.Div(
                className="filters",
                children=[
                    dcc.Dropdown(
                        id=ids.COMPARE_PICK,
                        multi=True,
                        options=[],
                        value=[],
                        placeholder="pick runs to compare...",
                        className="filter wide",
                    ),
                    dcc.Dropdown(
                        id=ids.COMPARE_SIGNAL,
                        options=list(SIGNAL_CHOICES),
                        value="loss",
                        clearable=False,
                        className="filter narrow",
                    ),
                    dcc.RadioItems(
                        id=ids.COMPARE_X,
                        value="step",
                        inline=True,
                        className="radio",
                        options=[
                            {"label": "by step", "value": "step"},
                            {"label": "by samples seen (step x batch size)", "value": "samples"},
                        ],
                    ),
                    dcc.Link(
                        "link to this comparison", id=ids.COMPARE_LINK, href="/compare", className="permalink"
                    ),
                ],
            ),
            dcc.Loading(dcc.Graph(id=ids.COMPARE_GRAPH, config={"displaylogo": False})),
            html.Div(id=ids.COMPARE_TABLE, className="comparetable"),
        ],
    )


def fact_rows(entries: list[RunEntry]) -> list[tuple[str, list[str], bool]]:
    """(label, one formatted value per run, values differ) for the side-by-side table.

    Rows: verdict, top finding, fix, steps, final loss, LR initial/final, then every
    hyperparameter any of the runs has (sorted by name).
    """
    facts: list[tuple[str, list[object]]] = [
        ("verdict", [summary.verdict_key(e) for e in entries]),
        ("confidence", [summary.confidence(e) for e in entries]),
        ("top finding", [summary.top_code(e) for e in entries]),
        ("all findings", [", ".join(summary.codes(e)) for e in entries]),
        ("fix", [summary.top_fix(e) for e in entries]),
        ("steps", [summary.last_step(e) for e in entries]),
        ("final loss", [summary.final_loss(e) for e in entries]),
        ("LR initial", [summary.lr_initial(e) for e in entries]),
        ("LR final", [summary.lr_final(e) for e in entries]),
    ]
    keys = sorted({k for e in entries for k in e.run.hparams})
    facts += [(f"hparam {k}", [e.run.hparams.get(k) for e in entries]) for k in keys]
    rows = []
    for label, values in facts:
        shown = [summary.fmt_number(v) for v in values]
        rows.append((label, shown, len(set(shown)) > 1))
    return rows


def picked_entries(snap: Snapshot, picked: list[str] | None) -> list[RunEntry]:
    """The store's runs for the picked ids (unknown ids dropped, at most `MAX_COMPARED`)."""
    return snap.entries_by_ids(list(picked or []))[:MAX_COMPARED]


def run_options(snap: Snapshot) -> list[dict[str, str]]:
    """Dropdown options: every run by name, valued by its id."""
    return [{"label": e.name, "value": str(e.id)} for e in snap.entries]


def search_for(run_ids: Sequence[int | str]) -> str:
    """The URL query string that selects these run ids, in order ("" for none)."""
    if not run_ids:
        return ""
    return "?" + urlencode({"runs": ",".join(str(i) for i in run_ids)}, safe=",")


def render(snap: Snapshot, picked: list[str] | None, signal: str, by: str) -> tuple:
    """What the compare page shows.

    Returns:
        (figure, table children, URL search string for the selection).
    """
    entries = picked_entries(snap, picked)
    fig = compare_figure(
        [e.run for e in entries],
        signal if signal in SIGNAL_CHOICES else "loss",
        by=by if by in ("step", "samples") else "step",
    )
    return fig, side_by_side(entries), search_for([e.id for e in entries])


def side_by_side(entries: list[RunEntry]) -> list:
    """Verdicts and hyperparameters in columns, rows whose values differ highlighted."""
    if not entries:
        return [
            html.P("Pick two or more runs above (or tick them in the overview table).", className="muted")
        ]
    head = html.Tr([html.Th("")] + [html.Th(dcc.Link(e.name, href=f"/run/{e.id}")) for e in entries])
    body = [
        html.Tr(className="diff" if differs else "", children=[html.Th(label)] + [html.Td(v) for v in values])
        for label, values, differs in fact_rows(entries)
    ]
    return [
        html.Table(className="compare", children=[html.Thead(head), html.Tbody(body)]),
        html.P("Highlighted rows differ between the runs.", className="muted"),
    ]


def register_callbacks(app: dash.Dash, store: RunStore) -> None:
    """Wire the compare page; a change of selection is written back to the URL."""

    @app.callback(
        Output(ids.COMPARE_GRAPH, "figure"),
        Output(ids.COMPARE_TABLE, "children"),
        Output(ids.COMPARE_LINK, "href"),
        Output(ids.URL, "search"),
        Input(ids.COMPARE_PICK, "value"),
        Input(ids.COMPARE_SIGNAL, "value"),
        Input(ids.COMPARE_X, "value"),
        Input(ids.VERSION, "data"),
        State(ids.URL, "pathname"),
        State(ids.URL, "search"),
    )
    def update_compare(
        picked: list[str] | None,
        signal: str,
        by: str,
        _version: int,
        pathname: str | None,
        search: str | None,
    ) -> tuple:
        fig, table, new_search = render(store.snapshot(), picked, signal, by)
        # Only a shown compare page owns the URL's query (and only when the selection changed it).
        on_page = (pathname or "").rstrip("/") == "/compare"
        write = on_page and dash.ctx.triggered_id == ids.COMPARE_PICK and new_search != (search or "")
        return fig, table, "/compare" + new_search, new_search if write else dash.no_update
