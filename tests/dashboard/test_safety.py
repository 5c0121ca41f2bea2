"""Nothing a browser sends makes the server read outside the logdir; serve() is safe by default.

Requests go through the real Flask app (`_dash-update-component`, assets, component suites);
a Python audit hook records every file the process opens while they are answered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import dashboard_http
import dashboard_logs
import pytest

from lrdoctor.dashboard.app import build_app
from lrdoctor.dashboard.data import RunStore

SECRET = "top-secret-content-4711"
_opened: list[str] | None = None


def _audit_hook(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.path.abspath(os.fsdecode(args[0])))


sys.addaudithook(_audit_hook)  # audit hooks cannot be removed; it records only inside `_recording`


@contextmanager
def _recording():
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    logdir = dashboard_logs.make_logdir(root / "logs")
    (root / "secret.txt").write_text(SECRET)
    dashboard_logs.write_run(root, "outside_run", [1.0, 0.5])  # a run beside the logdir, not in it
    store = RunStore(logdir)
    store.refresh()
    app = build_app(store)
    return root, Path(logdir), app, app.server.test_client()


def _outside(opened: list[str], root: Path, logdir: Path) -> list[str]:
    return [p for p in opened if (p.startswith(str(root)) and not p.startswith(str(logdir))) or "passwd" in p]


ATTACKS = [
    "..",
    "../secret.txt",
    "../../etc/passwd",
    "/etc/passwd",
    "%2e%2e%2fsecret.txt",
    "..%2f..%2fetc%2fpasswd",
    "%252e%252e%252fsecret.txt",
    "..\\secret.txt",
    "0/../../secret.txt",
    "outside_run",
    "../outside_run",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_run_and_compare_callbacks_ignore_paths(setup, attack):
    root, logdir, app, client = setup
    with _recording() as opened:
        r = dashboard_http.post(
            client, app, "page-run", {"url.pathname": f"/run/{attack}", "store-version": 1}
        )
        assert r.status_code == 200
        routed = dashboard_http.outputs_of(r.get_json())
        assert routed["run-id"]["data"] == attack  # a string only ever looked up as an id
        r = dashboard_http.post(client, app, "run-graph", {"store-version": 1, "run-id": attack})
        out = dashboard_http.outputs_of(r.get_json())
        assert "No run with id" in str(out["run-title"]["children"])
        r = dashboard_http.post(
            client,
            app,
            "compare-graph",
            {
                "compare-pick": [attack],
                "compare-signal": "loss",
                "compare-x": "step",
                "store-version": 1,
                "url.pathname": "/compare",
            },
        )
        body = r.get_data(as_text=True)
        assert r.status_code == 200 and "outside_run" not in body and SECRET not in body
    assert _outside(opened, root, logdir) == []


@pytest.mark.parametrize(
    "url",
    [
        "/assets/../secret.txt",
        "/assets/../../secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/%252e%252e%252fsecret.txt",
        "/_dash-component-suites/dash/../../../../../etc/passwd",
        "/_dash-component-suites/dash/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/run/..%2f..%2fsecret.txt",
        "/compare?runs=..%2fsecret.txt",
    ],
)
def test_static_routes_stay_inside(setup, url):
    root, logdir, _app, client = setup
    with _recording() as opened:
        r = client.get(url)
        body = r.get_data(as_text=True)
    assert SECRET not in body and "root:" not in body
    assert r.status_code in (200, 308, 404)  # the page shell, or not found
    assert _outside(opened, root, logdir) == []


def test_served_assets_are_ours(setup):
    *_, client = setup
    r = client.get("/assets/lrdoctor.css")
    assert r.status_code == 200 and b"projector" in r.data


def test_serve_binds_localhost_without_debug_and_reports_progress(setup):
    _root, logdir, *_ = setup
    code = f"from lrdoctor.dashboard import serve; serve({str(logdir)!r}, port=0, refresh_s=1.0)"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline and (url is None or not any(" read " in x for x in lines)):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"dashboard on (http://[^/]+/)", line)
            url = m.group(1) if m else url
        assert url is not None and url.startswith("http://127.0.0.1:"), lines
        assert "4 event files" in lines[0]
        assert any(
            re.search(r"read 4 runs, [\d,]+ points in [\d.]+ s \(audit [\d.]+ s\); \d+ read problems", x)
            for x in lines
        ), lines
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert '"ui":false' in page.replace(" ", "")  # Dash debug mode (dev tools UI) is off
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_reports_missing_logdir(tmp_path):
    from lrdoctor.analyzers import LogdirError
    from lrdoctor.dashboard import serve

    with pytest.raises(LogdirError, match="no such logdir"):
        serve(tmp_path / "missing")


def test_serve_reports_taken_port(setup):
    import socket

    from lrdoctor.dashboard import serve

    _root, logdir, *_ = setup
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{port} \(Address already in use\)"):
            serve(logdir, port=port)
