"""figures.py: downsampling that keeps extremes, NaN markers, findings drawn from their fields."""

from __future__ import annotations

import math

import dashboard_logs
import numpy as np
import pytest

from lrdoctor.analyzers import Finding, Severity, read_logdir
from lrdoctor.dashboard import figures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    return read_logdir(dashboard_logs.make_logdir(root))


class TestDownsample:
    def test_empty(self):
        s, v = figures.downsample(np.array([], dtype=np.int64), np.array([]))
        assert len(s) == 0 and len(v) == 0

    def test_small_curve_kept_whole_minus_nonfinite(self):
        steps = np.arange(6)
        values = np.array([1.0, np.nan, 3.0, np.inf, 5.0, 6.0])
        s, v = figures.downsample(steps, values, 100)
        assert s.tolist() == [0, 2, 4, 5]
        assert v.tolist() == [1.0, 3.0, 5.0, 6.0]

    def test_bound_and_endpoints(self):
        steps = np.arange(100_003)
        values = np.sin(steps / 100.0)
        s, v = figures.downsample(steps, values, 500)
        assert len(s) <= 500
        assert s[0] == 0 and s[-1] == 100_002
        assert np.all(np.diff(s) > 0)

    @pytest.mark.parametrize("where", [0, 1, 4_999, 77_777, 99_999])
    def test_single_spike_and_dip_survive(self, where):
        values = np.ones(100_000)
        values[where] = 1e6
        values[(where + 50_000) % 100_000] = -1e6
        s, v = figures.downsample(np.arange(100_000), values, 200)
        assert v.max() == 1e6 and s[v.argmax()] == where
        assert v.min() == -1e6 and s[v.argmin()] == (where + 50_000) % 100_000

    def test_repeated_steps_allowed(self):
        steps = np.repeat(np.arange(5_000), 3)
        s, v = figures.downsample(steps, np.arange(15_000, dtype=float), 100)
        assert len(s) <= 100 and v[-1] == 14_999.0

    def test_errors(self):
        with pytest.raises(ValueError, match="max_points"):
            figures.downsample(np.arange(3), np.arange(3.0), 2)
        with pytest.raises(ValueError, match="differ in length"):
            figures.downsample(np.arange(3), np.arange(4.0))


def test_first_nonfinite_and_wants_log(runs):
    assert figures.first_nonfinite(runs["healthy"].signal("loss")) is None
    assert figures.first_nonfinite(runs["diverged"].signal("loss")) == (120, "NaN")
    assert figures.first_nonfinite(runs["diverged"].signal("grad_norm")) == (120, "+inf")
    assert not figures.wants_log(np.array([1.0, 2.0, 3.0]))
    assert figures.wants_log(np.array([1e-6, 1e-3, 1.0]))
    assert not figures.wants_log(np.array([-1.0, 1e3]))
    assert not figures.wants_log(np.array([np.nan]))


def _trace_names(fig) -> list[str]:
    return [t.name for t in fig.data]


class TestRunFigure:
    def test_rows_shared_axis_and_nan_marker(self, runs):
        fig = figures.run_figure(runs["diverged"])
        titles = [a.text for a in fig.layout.annotations]
        assert titles[:3] == ["loss", "gradient norm", "learning rate"]
        assert fig.layout.xaxis.matches == fig.layout.xaxis2.matches == "x3"  # one shared step axis
        names = _trace_names(fig)
        assert "NaN loss at step 120" in names
        assert "+inf grad_norm at step 120" in names
        marker = next(t for t in fig.data if t.name == "NaN loss at step 120")
        assert list(marker.x) == [120]
        # the marker sits on the last finite loss, so it is visible on the curve
        loss = runs["diverged"].signal("loss")
        assert marker.y[0] == pytest.approx(loss.values[119])
        assert any(s.type == "line" and s.x0 == 120 for s in fig.layout.shapes)

    def test_findings_drawn_from_fields(self, runs):
        osc = Finding(
            "loss_oscillating",
            Severity.WARNING,
            100,
            (100, 250),
            {"swing_ratio": 3.0},
            "the loss swings",
            "lower the LR",
            "loss",
        )
        spike = Finding("exploding_gradients", Severity.ERROR, 42, (42, 42), {}, "spike", "clip", "grad_norm")
        slow = Finding("slow_decrease", Severity.INFO, 50, (50, 350), {}, "slow", "raise the LR", "loss")
        fig = figures.run_figure(runs["healthy"], [osc, spike, slow])
        rects = [s for s in fig.layout.shapes if s.type == "rect"]
        assert sorted((r.x0, r.x1) for r in rects) == [(50, 350), (100, 250)]
        names = _trace_names(fig)
        assert "loss_oscillating (step 100)" in names
        spike_trace = next(t for t in fig.data if t.name == "exploding_gradients (step 42)")
        assert spike_trace.yaxis == "y2"  # the gradient-norm row
        gn = runs["healthy"].signal("grad_norm")
        assert spike_trace.y[0] == pytest.approx(gn.values[42])
        trend = next(t for t in fig.data if t.name == "slow_decrease trend")
        assert list(trend.x) == [50, 350] and trend.y[0] > trend.y[1]

    def test_finding_on_missing_signal_goes_to_loss_row(self, runs):
        f = Finding("stuck_at_chance", Severity.WARNING, 10, (10, 10), {}, "m", "f", "accuracy")
        fig = figures.run_figure(runs["healthy"], [f])
        t = next(t for t in fig.data if t.name.startswith("stuck_at_chance"))
        assert t.yaxis == "y"

    def test_log_axis_where_it_helps(self, runs):
        fig = figures.run_figure(runs["diverged"])
        assert fig.layout.yaxis.type == "linear"  # loss spans < 30x
        assert fig.layout.yaxis2.type == "log"  # gradient norm grows 300x before it overflows

    def test_large_run_is_downsampled(self, tmp_path):
        n = 20_000
        dashboard_logs.write_run(tmp_path, "big", [1.0 + math.sin(i) for i in range(n)])
        fig = figures.run_figure(read_logdir(tmp_path)["big"], max_points=400)
        assert all(len(t.x) <= 400 for t in fig.data)

    def test_no_known_signal(self, tmp_path):
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(tmp_path / "odd")) as w:
            w.add_scalar("something/else", 1.0, 0)
        fig = figures.run_figure(read_logdir(tmp_path)["odd"])
        assert "something/else" in fig.layout.annotations[0].text


def test_range_test_figure(runs):
    fig = figures.range_test_figure(runs["range_test"])
    assert fig.layout.xaxis.type == "log"
    assert any(s.type == "line" and s.x0 == pytest.approx(0.01) for s in fig.layout.shapes)
    assert any("suggested LR 0.01" in a.text for a in fig.layout.annotations)
    xs = np.asarray(fig.data[0].x)
    assert np.all(np.diff(xs) > 0) and xs[0] == pytest.approx(1e-6)


def test_range_test_figure_needs_lr(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "noloss")) as w:
        w.add_scalar("lrdoctor/loss", 1.0, 0)
    fig = figures.range_test_figure(read_logdir(tmp_path)["noloss"])
    assert "needs both" in fig.layout.annotations[0].text


class TestCompareFigure:
    def test_by_step_overlays_every_run(self, runs):
        fig = figures.compare_figure([runs["healthy"], runs["diverged"]], "loss")
        shown = [t.name for t in fig.data if t.showlegend is not False and t.yaxis == "y"]
        assert shown == ["healthy", "diverged"]

    def test_by_samples_scales_by_batch_size(self, runs):
        fig = figures.compare_figure([runs["healthy"], runs["diverged"]], "loss", by="samples")
        h = next(t for t in fig.data if t.name == "healthy" and t.yaxis == "y")
        d = next(t for t in fig.data if t.name == "diverged" and t.yaxis == "y")
        assert h.x[1] == 64 and d.x[1] == 128

    def test_runs_without_batch_size_named(self, tmp_path, runs):
        dashboard_logs.write_run(tmp_path, "nobs", [1.0, 0.9, 0.8])
        nobs = read_logdir(tmp_path)["nobs"]
        fig = figures.compare_figure([runs["healthy"], nobs], "loss", by="samples")
        assert "nobs" in fig.layout.title.text
        assert all(t.name != "nobs" for t in fig.data)

    def test_errors_and_empty(self, runs):
        with pytest.raises(ValueError, match="by must be"):
            figures.compare_figure([runs["healthy"]], by="epoch")
        assert "pick runs" in figures.compare_figure([]).layout.annotations[0].text
