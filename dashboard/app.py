"""The Dash app: `create_app` (factory, no module-level app) and `serve` (the `lrdoctor serve` command).

Layout: a header (navigation, live status, export buttons), a `dcc.Location` that routes to a
page (`/` overview, `/run/<id>`, `/compare?runs=<id>,<id>`), and a `dcc.Interval` whose tick
asks the `RunStore` for an incremental refresh. Pages listen to the store version, so new and
growing runs appear without a restart.

Every page is always in the layout and the router only shows one and hands it its parameters
(run id, compared ids): callbacks never meet a missing component, and a page keeps its state
(filters, zoom) while another is shown.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import dash
from dash import Input, Output, State, dcc, html
from dash.exceptions import DependencyException

from lrdoctor.dashboard import export, ids
from lrdoctor.dashboard.data import RunStore, Snapshot
from lrdoctor.dashboard.views import compare, overview
from lrdoctor.dashboard.views import run as run_view

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
# How often the page polls while the first read is running (then every refresh_s).
LOADING_POLL_MS = 1000
_HIDDEN = {"display": "none"}
# Seconds between "still reading" lines in the terminal during the first load.
PROGRESS_EVERY_S = 5.0


def create_app(
    logdir: str | os.PathLike, *, refresh_s: float = 10.0, tag_overrides: dict[str, str] | None = None
) -> dash.Dash:
    """Build the dashboard for a logdir and start reading it in the background.

    The app answers at once; pages show a loading state until the first read finishes.

    Args:
        logdir: a TensorBoard logdir.
        refresh_s: seconds between incremental re-reads of the logdir (> 0).
        tag_overrides: ``{signal: tag}`` choices passed to the reader.

    Returns:
        The Dash app (its Flask server is ``app.server``).

    Raises:
        LogdirError: if ``logdir`` does not exist or is not a directory.
        ValueError: if ``refresh_s`` <= 0.
    """
    store = RunStore(logdir, tag_overrides=tag_overrides, refresh_s=refresh_s)
    store.load_in_background()
    return build_app(store)


def build_app(store: RunStore) -> dash.Dash:
    """The Dash app over an existing store (`create_app` without starting a read)."""
    app = dash.Dash(
        __name__,
        assets_folder=_ASSETS,
        title=f"lrdoctor: {os.path.basename(store.path) or store.path}",
        update_title=None,
    )
    app.layout = html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Interval(id=ids.TICK, interval=LOADING_POLL_MS, n_intervals=0),
            dcc.Store(id=ids.VERSION, data=0),
            dcc.Download(id=ids.DOWNLOAD),
            html.Header(
                className="topbar",
                children=[
                    html.A("lrdoctor", href="/", className="brand"),
                    dcc.Link("Overview", href="/", id=ids.NAV_OVERVIEW, className="nav"),
                    dcc.Link("Compare", href="/compare", id=ids.NAV_COMPARE, className="nav"),
                    html.Span(html.Span(store.path, className="ltr"), className="logdir", title=store.path),
                    html.Span(id=ids.STATUS, className="status", children="reading logdir..."),
                    html.Button("Export HTML", id=ids.EXPORT_HTML, className="button"),
                    html.Button("Export Markdown", id=ids.EXPORT_MD, className="button"),
                ],
            ),
            dcc.Store(id=ids.ROUTED_LOADED, data=False),
            html.Main(
                id=ids.PAGE,
                children=[
                    html.Div(id=ids.PAGE_OVERVIEW, children=overview.layout()),
                    html.Div(id=ids.PAGE_RUN, children=run_view.layout(), style=_HIDDEN),
                    html.Div(id=ids.PAGE_COMPARE, children=compare.layout(), style=_HIDDEN),
                    html.Div(id=ids.PAGE_NOTFOUND, className="notfound", style=_HIDDEN),
                ],
            ),
        ]
    )
    # Dash refuses component-suite paths it did not register (e.g. "../../etc/passwd") by raising;
    # answer 404 instead of a 500 with a traceback in the terminal.
    app.server.register_error_handler(DependencyException, lambda _e: ("not found", 404))
    _register_shell_callbacks(app, store)
    overview.register_callbacks(app, store)
    run_view.register_callbacks(app, store)
    compare.register_callbacks(app, store)
    return app


def status_text(store: RunStore, snap: Snapshot, now: float | None = None) -> str:
    """The header's one-line status: what is loaded and how fresh it is."""
    if not snap.loaded:
        return "reading logdir..."
    if snap.pending:
        return f"reading logdir: {len(snap.entries)} runs so far, {snap.pending} folders to go..."
    now = time.time() if now is None else now
    live = sum(store.is_live(e, now) for e in snap.entries)
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.refreshed_at))
    return (
        f"{len(snap.entries)} runs, {live} live, {snap.num_points:,} points; "
        f"read {stamp}, every {store.refresh_s:g} s"
    )


@dataclass(frozen=True)
class Route:
    """Which page a URL shows, with its parameters (strings from the URL, checked by the views).

    Attributes:
        page: "overview", "run", "compare" or "notfound".
        run_id: the run page's id ("" otherwise).
        compare_ids: the compare page's ids (empty otherwise).
    """

    page: str
    run_id: str = ""
    compare_ids: tuple[str, ...] = ()


def route_for(pathname: str | None, search: str | None) -> Route:
    """Parse a URL path and query. Nothing here touches the file system."""
    path = (pathname or "/").rstrip("/") or "/"
    if path == "/":
        return Route("overview")
    if path.startswith("/run/"):
        return Route("run", run_id=path[len("/run/") :])
    if path == "/compare":
        picked = parse_qs((search or "").lstrip("?")).get("runs", [""])[0]
        return Route("compare", compare_ids=tuple(p for p in picked.split(",") if p))
    return Route("notfound")


def _not_found(pathname: str | None) -> list:
    return [
        html.H2("No such page"),
        html.P(["Nothing at ", html.Code(pathname or ""), ". ", dcc.Link("Back to the overview", href="/")]),
    ]


def _register_shell_callbacks(app: dash.Dash, store: RunStore) -> None:
    @app.callback(
        Output(ids.VERSION, "data"),
        Output(ids.STATUS, "children"),
        Output(ids.TICK, "interval"),
        Input(ids.TICK, "n_intervals"),
        State(ids.VERSION, "data"),
    )
    def tick(_n: int, version: int) -> tuple:
        snap = store.refresh_if_due()
        interval = int(store.refresh_s * 1000) if snap.loaded and not snap.pending else LOADING_POLL_MS
        new_version = snap.version if snap.version != version else dash.no_update
        return new_version, status_text(store, snap), interval

    pages = {
        ids.PAGE_OVERVIEW: "overview",
        ids.PAGE_RUN: "run",
        ids.PAGE_COMPARE: "compare",
        ids.PAGE_NOTFOUND: "notfound",
    }

    @app.callback(
        *[Output(p, "style") for p in pages],
        Output(ids.PAGE_NOTFOUND, "children"),
        Output(ids.RUN_ID, "data"),
        Output(ids.COMPARE_PICK, "options"),
        Output(ids.COMPARE_PICK, "value"),
        Output(ids.ROUTED_LOADED, "data"),
        Input(ids.URL, "pathname"),
        Input(ids.VERSION, "data"),
        State(ids.URL, "search"),
        State(ids.ROUTED_LOADED, "data"),
    )
    def route(pathname: str | None, _version: int, search: str | None, routed_loaded: bool) -> tuple:
        snap = store.snapshot()
        if dash.ctx.triggered_id == ids.VERSION and routed_loaded:
            return (dash.no_update,) * 9  # a refresh re-routes only a page routed before the first read
        r = route_for(pathname, search)
        styles = [None if page == r.page else _HIDDEN for page in pages.values()]
        picked = [str(e.id) for e in compare.picked_entries(snap, list(r.compare_ids))]
        return (
            *styles,
            _not_found(pathname) if r.page == "notfound" else [],
            r.run_id,
            compare.run_options(snap),
            picked,
            snap.loaded and not snap.pending,  # re-route as parts of the first read arrive
        )

    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        Input(ids.EXPORT_HTML, "n_clicks"),
        Input(ids.EXPORT_MD, "n_clicks"),
        prevent_initial_call=True,
    )
    def download(_html_clicks: int | None, _md_clicks: int | None) -> dict:
        snap = store.wait_loaded()
        if dash.ctx.triggered_id == ids.EXPORT_MD:
            return dcc.send_string(export.report_markdown(store), "lrdoctor-audit.md")
        return dcc.send_string(export.report_html(snap, store.path), "lrdoctor-audit.html")


def serve(
    logdir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8050,
    refresh_s: float = 10.0,
    tag_overrides: dict[str, str] | None = None,
) -> None:
    """Serve the dashboard until interrupted (never in Dash debug mode).

    Prints progress lines on stderr while the first read runs (the page shows a loading state
    meanwhile) and the URL to open.

    Args:
        logdir: a TensorBoard logdir.
        host: address to bind; the default serves this machine only.
        port: TCP port.
        refresh_s: seconds between incremental re-reads of the logdir.
        tag_overrides: ``{signal: tag}`` choices passed to the reader.

    Raises:
        LogdirError: if ``logdir`` does not exist or is not a directory.
        OSError: if ``host:port`` cannot be bound (message names both).
    """
    from werkzeug.serving import make_server

    store = RunStore(logdir, tag_overrides=tag_overrides, refresh_s=refresh_s)
    scan = store.scan()
    _say(f"{store.path}: {scan.files} event files ({scan.bytes / 1e6:.1f} MB) to read")
    app = build_app(store)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    # Bind here: werkzeug's own bind prints a message and exits on a taken port.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server = make_server(host, port, app.server, threaded=True, fd=sock.fileno())
    t0 = time.perf_counter()
    done = threading.Event()

    def on_loaded(snap: Snapshot | None, err: BaseException | None) -> None:
        done.set()
        if err is not None:
            _say(f"error: first read failed ({type(err).__name__}: {err}); the page stays empty")
            return
        assert snap is not None
        _say(
            f"read {len(snap.entries)} runs, {snap.num_points:,} points in {time.perf_counter() - t0:.1f} s "
            f"(audit {snap.audit_s:.1f} s)"
            + (f"; {len(snap.warnings)} read problems, listed on the overview" if snap.warnings else "")
        )

    store.load_in_background(on_loaded)

    def progress() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            snap = store.snapshot()
            _say(
                f"still reading and auditing {scan.files} files ({time.perf_counter() - t0:.0f} s; "
                f"{len(snap.entries)} runs shown, {snap.pending} folders to go)..."
            )

    threading.Thread(target=progress, name="lrdoctor-progress", daemon=True).start()
    _say(f"dashboard on http://{host}:{server.port}/ (Ctrl+C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _say(line: str) -> None:
    print(f"lrdoctor: {line}", file=sys.stderr, flush=True)
