"""app.py over HTTP: the factory, the live tick, and the router (the real Flask app, no browser)."""

from __future__ import annotations

import time

import dashboard_http
import dashboard_logs
import pytest

from lrdoctor.analyzers import LogdirError
from lrdoctor.dashboard import create_app
from lrdoctor.dashboard.app import LOADING_POLL_MS


def _post(app, client, output_id, values, changed=None):
    r = dashboard_http.post(client, app, output_id, values, changed)
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    return dashboard_http.outputs_of(r.get_json()) if r.status_code == 200 else {}


def _wait_loaded(app, client, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = _post(app, client, "store-version", {"tick.n_intervals": 1, "store-version.data": 0})
        if "store-version" in out:
            return out["store-version"]["data"]
        time.sleep(0.1)
    raise AssertionError("the first read did not finish")


@pytest.fixture
def served(tmp_path):
    logdir = dashboard_logs.make_logdir(tmp_path / "logs")
    app = create_app(logdir, refresh_s=0.5)
    return logdir, app, app.server.test_client()


def test_factory_serves_page_and_loads_in_background(served):
    _, app, client = served
    page = client.get("/")
    assert page.status_code == 200 and b"lrdoctor" in page.data
    version = _wait_loaded(app, client)
    assert version >= 1
    out = _post(app, client, "store-version", {"tick.n_intervals": 2, "store-version.data": version})
    assert out["tick"]["interval"] == 500 != LOADING_POLL_MS  # refresh_s once loaded
    assert "4 runs" in out["status"]["children"]


def test_tick_picks_up_a_new_run(served):
    logdir, app, client = served
    version = _wait_loaded(app, client)
    dashboard_logs.write_run(logdir, "late", [1.0, 0.8, 0.6])
    time.sleep(0.6)  # > refresh_s
    out = _post(app, client, "store-version", {"tick.n_intervals": 3, "store-version.data": version})
    new_version = out["store-version"]["data"]
    assert new_version > version
    table = _post(app, client, "overview-table", {"store-version": new_version})
    assert "late" in [row["name"] for row in table["overview-table"]["data"]]


def _route(app, client, path, search=""):
    out = _post(
        app,
        client,
        "page-run",
        {"url.pathname": path, "url.search": search, "store-version": 1, "routed-loaded": False},
        changed=["url.pathname"],
    )
    shown = [
        p for p in ("page-overview", "page-run", "page-compare", "page-notfound") if out[p]["style"] is None
    ]
    return shown, out


def test_router(served):
    _, app, client = served
    _wait_loaded(app, client)
    assert _route(app, client, "/")[0] == ["page-overview"]
    shown, out = _route(app, client, "/run/2")
    assert shown == ["page-run"] and out["run-id"]["data"] == "2"
    shown, out = _route(app, client, "/compare", "?runs=3,..%2f,1,77")
    assert shown == ["page-compare"] and out["compare-pick"]["value"] == ["3", "1"]
    assert [o["label"] for o in out["compare-pick"]["options"]] == [
        "broken",
        "diverged",
        "healthy",
        "range_test",
    ]
    shown, out = _route(app, client, "/../../etc/passwd")
    assert shown == ["page-notfound"] and "No such page" in str(out["page-notfound"]["children"])


def test_factory_errors(tmp_path):
    with pytest.raises(LogdirError, match="no such logdir"):
        create_app(tmp_path / "missing")
    with pytest.raises(ValueError, match="refresh_s"):
        create_app(tmp_path, refresh_s=-1)
