"""Views as plain functions on a RunStore over sample_runs/ and over event files written here."""

from __future__ import annotations

from pathlib import Path

import dashboard_logs
import pytest
from dash import html

from lrdoctor.dashboard import summary
from lrdoctor.dashboard.app import Route, route_for, status_text
from lrdoctor.dashboard.data import RunStore
from lrdoctor.dashboard.figures import first_nonfinite
from lrdoctor.dashboard.views import compare, overview
from lrdoctor.dashboard.views import run as run_view

SAMPLE_RUNS = Path(__file__).resolve().parents[2] / "sample_runs"


@pytest.fixture(scope="module")
def samples():
    store = RunStore(SAMPLE_RUNS)
    return store, store.refresh()


@pytest.fixture(scope="module")
def tmp_store(tmp_path_factory):
    store = RunStore(dashboard_logs.make_logdir(tmp_path_factory.mktemp("logs")))
    return store, store.refresh()


def _texts(component) -> str:
    """All text inside a Dash component tree."""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_texts(c) for c in component)
    if component is None:
        return ""
    return _texts(getattr(component, "children", None))


def _by_name(snap, name):
    return next(e for e in snap.entries if e.name == name)


class TestOverview:
    def test_one_row_per_run_with_facts(self, samples):
        store, snap = samples
        rows = overview.table_rows(store, snap)
        assert [r["name"] for r in rows] == [e.name for e in snap.entries]
        nan = next(r for r in rows if r["name"] == "cnn_nan")
        assert nan["verdict_key"] == "lr_too_high" and nan["top_finding"] == "nan_loss"
        assert nan["run"] == f"[cnn\\_nan](/run/{nan['id']})"
        hp = _by_name(snap, "cnn_nan").run.hparams
        assert (nan["lr_initial"], nan["optimizer"], nan["batch_size"]) == (hp["lr"], "SGD", hp["batch_size"])
        assert nan["final_loss"] is None and nan["final_loss_text"] == "nan"  # NaN cannot travel as JSON
        assert nan["fix_full"] == _by_name(snap, "cnn_nan").report.top.fix
        assert len(nan["fix"]) <= summary.SHORT_FIX_CHARS + 3
        healthy = next(r for r in rows if r["name"] == "cnn_healthy")
        loss = _by_name(snap, "cnn_healthy").run.signal("loss")
        assert healthy["final_loss"] == pytest.approx(loss.values[-1])
        assert healthy["steps"] == max(
            int(s.steps[-1]) for s in _by_name(snap, "cnn_healthy").run.scalars.values()
        )

    def test_counts_match_expected_json(self, samples):
        import json

        _, snap = samples
        expected = json.loads((SAMPLE_RUNS / "expected.json").read_text())
        want: dict[str, int] = {}
        for name in (e.name for e in snap.entries):
            v = expected[name]["verdict"]
            want[v] = want.get(v, 0) + 1
        assert overview.verdict_counts(snap) == want

    def test_filters(self, samples):
        store, snap = samples
        rows = overview.table_rows(store, snap)
        high = overview.filter_rows(rows, verdicts=["lr_too_high"])
        assert {r["name"] for r in high} == {
            e.name for e in snap.entries if summary.verdict_key(e) == "lr_too_high"
        }
        nan = overview.filter_rows(rows, codes=["nan_loss"])
        assert {r["name"] for r in nan} >= {"cnn_nan", "rnn_exploding_noclip"}
        assert [r["name"] for r in overview.filter_rows(rows, text="RNN_clip")] == ["rnn_clipped"]
        assert overview.filter_rows(rows, verdicts=["healthy"], codes=["nan_loss"]) == []
        assert overview.filter_rows(rows) == rows

    def test_counts_bar_and_loading_state(self, tmp_path):
        dashboard_logs.write_run(tmp_path, "a", [1.0, 0.5])
        store = RunStore(tmp_path)
        loading = _texts(overview.counts_bar(store, store.snapshot()))
        assert "Reading 1 event files" in loading
        snap = store.refresh()
        assert "1 runs" in _texts(overview.counts_bar(store, snap))

    def test_empty_logdir_says_so(self, tmp_path):
        store = RunStore(tmp_path)
        assert "No runs in" in _texts(overview.counts_bar(store, store.refresh()))

    def test_problems_list_bad_files(self, tmp_store):
        _, snap = tmp_store
        text = _texts(overview.problems(snap))
        assert "broken" in text and "Read problems" in text

    def test_compare_href(self):
        assert overview.compare_href([]) == "/compare"
        assert overview.compare_href([3, 1]) == "/compare?runs=3,1"


class TestRunPage:
    def test_nan_run(self, samples):
        store, snap = samples
        e = _by_name(snap, "cnn_nan")
        title, fig, side, range_box = run_view.render(store, snap, str(e.id))
        assert _texts(title).startswith("cnn_nan")
        step, kind = first_nonfinite(e.run.signal("loss"))
        assert f"{kind} loss at step {step}" in [t.name for t in fig.data]
        text = _texts(side)
        assert e.report.top.fix in text and e.report.top.message in text
        assert "LR too high" in text and "momentum" in text
        assert range_box == []

    def test_range_test_shows_loss_vs_lr(self, samples):
        store, snap = samples
        e = _by_name(snap, "lr_range_test")
        _, _, _, range_box = run_view.render(store, snap, e.id)
        range_fig = range_box[0].figure
        assert range_fig.layout.xaxis.type == "log"
        suggested = f"suggested LR {e.run.hparams['suggested_lr']:.3g}"
        assert any(suggested in a.text for a in range_fig.layout.annotations)

    @pytest.mark.parametrize("bad", ["..", "../../etc/passwd", "/etc/passwd", "%2e%2e%2f", "99999", "x"])
    def test_unknown_id(self, samples, bad):
        store, snap = samples
        title, fig, side, _ = run_view.render(store, snap, bad)
        assert "No run with id" in title and "overview" in _texts(side)

    def test_hidden_page_is_cheap(self, samples):
        store, snap = samples
        assert run_view.render(store, snap, "")[0] == ""

    def test_analysis_failure_is_shown(self, tmp_store):
        from lrdoctor.dashboard.data import RunEntry

        _, snap = tmp_store
        e = snap.entries[1]
        failed = RunEntry(e.id, e.run, None, "diverged: analysis failed (ValueError: boom)")
        text = _texts(run_view.side_panel(failed))
        assert "analysis failed" in text and "analysis failed" in summary.top_fix(failed)


class TestCompare:
    def test_fact_rows_highlight_differences(self, samples):
        _, snap = samples
        a, b = _by_name(snap, "batch_32"), _by_name(snap, "batch_256_unscaled")
        rows = {label: (values, differs) for label, values, differs in compare.fact_rows([a, b])}
        assert rows["hparam batch_size"] == (["32", "256"], True)
        assert rows["hparam optimizer"] == (["SGD", "SGD"], False)
        assert rows["verdict"][0] == [summary.verdict_key(a), summary.verdict_key(b)]

    def test_render_keeps_known_ids_only(self, samples):
        _, snap = samples
        ids = [str(e.id) for e in snap.entries[:2]]
        fig, table, search = compare.render(
            snap, ["..", "/etc/passwd", *ids, ids[0], "%2e%2e%2f"], "loss", "step"
        )
        assert search == f"?runs={ids[0]},{ids[1]}"
        assert [t.name for t in fig.data if t.showlegend is not False][:2] == [
            e.name for e in snap.entries[:2]
        ]
        assert snap.entries[0].name in _texts(table)

    def test_render_bad_choices_fall_back(self, samples):
        _, snap = samples
        fig, _, search = compare.render(snap, [], "../../x", "epoch")
        assert search == "" and "pick runs" in fig.layout.annotations[0].text
        assert "Pick two or more" in _texts(compare.side_by_side([]))


@pytest.mark.parametrize(
    "path,search,expected",
    [
        ("/", "", Route("overview")),
        (None, None, Route("overview")),
        ("/run/3", "", Route("run", run_id="3")),
        ("/run/../../etc/passwd", "", Route("run", run_id="../../etc/passwd")),
        ("/compare", "?runs=1,2", Route("compare", compare_ids=("1", "2"))),
        ("/compare/", "?runs=%2e%2e%2f,2", Route("compare", compare_ids=("../", "2"))),
        ("/etc/passwd", "", Route("notfound")),
    ],
)
def test_route_for(path, search, expected):
    assert route_for(path, search) == expected


def test_status_text(samples):
    store, snap = samples
    text = status_text(store, snap)
    assert f"{len(snap.entries)} runs" in text and f"{snap.num_points:,} points" in text
    assert status_text(RunStore(SAMPLE_RUNS), RunStore(SAMPLE_RUNS).snapshot()) == "reading logdir..."


def test_short_fix():
    assert summary.short_fix("lower the LR") == "lower the LR"
    cut = summary.short_fix("word " * 40, limit=20)
    assert cut.endswith("...") and len(cut) <= 23 and "  " not in cut
    assert isinstance(html.Div(summary.fmt_number(0.000123456)).children, str)
    assert summary.fmt_number(1234) == "1,234" and summary.fmt_number(float("nan")) == "nan"
