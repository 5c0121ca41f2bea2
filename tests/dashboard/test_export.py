"""export.py: one self-contained HTML file with the plots, or the analyzers' Markdown; from the UI too."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import dashboard_http
import dashboard_logs
import pytest

from lrdoctor.analyzers import LogdirError, audit
from lrdoctor.dashboard import summary
from lrdoctor.dashboard.app import build_app
from lrdoctor.dashboard.data import RunStore
from lrdoctor.dashboard.export import ExportError, write_report
from lrdoctor.dashboard.figures import first_nonfinite

SAMPLE_RUNS = Path(__file__).resolve().parents[2] / "sample_runs"


@pytest.fixture(scope="module")
def html_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "audit.html"
    path = write_report(SAMPLE_RUNS, out)
    return path, Path(path).read_text(encoding="utf-8")


def test_html_is_self_contained_with_plots(html_report):
    path, text = html_report
    assert Path(path).is_absolute() and path.endswith("audit.html")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script src=" not in text and "<link " not in text  # nothing fetched when opened
    assert "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js itself is inlined


def test_html_has_every_run_verdict_and_fix(html_report):
    _, text = html_report
    store = RunStore(SAMPLE_RUNS)
    snap = store.refresh()
    for e in snap.entries:
        assert f"id='run-{e.id}'>{html.escape(e.name)}" in text
        assert html.escape(summary.top_fix(e)) in text
    nan_run = next(e for e in snap.entries if e.name == "cnn_nan").run
    step, kind = first_nonfinite(nan_run.signal("loss"))
    assert f"{kind} loss at step {step}" in text  # the NaN marker of cnn_nan's plot
    assert text.count("class='finding'") == sum(len(e.report.findings) for e in snap.entries)


def test_markdown_is_the_analyzers_report(tmp_path):
    path = write_report(SAMPLE_RUNS, tmp_path / "audit.md")
    assert Path(path).read_text(encoding="utf-8") == audit(SAMPLE_RUNS).to_markdown()


def test_names_are_escaped(tmp_path):
    logdir = tmp_path / "logs"
    dashboard_logs.write_run(logdir, "<b>bold&run", [1.0, 0.9, 0.8])
    text = Path(write_report(logdir, tmp_path / "r.html")).read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&amp;run" in text and "<b>bold" not in text


def test_errors(tmp_path):
    with pytest.raises(ExportError, match=r"no_such_dir/out.html: cannot write"):
        write_report(SAMPLE_RUNS, tmp_path / "no_such_dir" / "out.html")
    with pytest.raises(LogdirError, match="no such logdir"):
        write_report(tmp_path / "missing", tmp_path / "out.html")


@pytest.mark.parametrize(
    "button,filename", [("export-html", "lrdoctor-audit.html"), ("export-md", "lrdoctor-audit.md")]
)
def test_export_buttons_download_the_report(tmp_path, button, filename):
    store = RunStore(dashboard_logs.make_logdir(tmp_path / "logs"))
    store.refresh()
    app = build_app(store)
    r = dashboard_http.post(app.server.test_client(), app, "download", {button: 1}, [f"{button}.n_clicks"])
    data = dashboard_http.outputs_of(r.get_json())["download"]["data"]
    assert data["filename"] == filename
    content = base64.b64decode(data["content"]).decode() if data.get("base64") else data["content"]
    assert "diverged" in content and "range_test" in content
