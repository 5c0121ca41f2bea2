"""LR range test: a real sweep on a tiny CNN, the pick on hand-made curves, state restored."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lrdoctor.analyzers import read_logdir
from lrdoctor.collectors import lr_range_test
from lrdoctor.collectors.range_test import suggest_lr

F = nn.functional


def _state(model, opt):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


class TestSuggestLr:
    def test_basic(self):
        """Loss falls fastest between 1e-3 and 1e-2, bottoms at 1e-1, then rises."""
        lrs = np.logspace(-5, 0, 51)  # 10 points per decade
        x = np.log10(lrs)
        smoothed = np.where(x < -3, 2.3 - 0.05 * (x + 5), 2.2 - 0.8 * (x + 3))  # slope -0.8/decade
        smoothed = np.where(x > -1, smoothed[40] + 3 * (x + 1), smoothed)  # bottom at 1e-1
        suggested, steepest, at_min = suggest_lr(lrs, smoothed, max_fraction=1.0)
        assert at_min == pytest.approx(0.1)
        assert 1e-3 <= steepest <= 1e-1
        assert suggested == steepest

    def test_capped_at_a_fraction_of_the_minimum(self):
        lrs = np.logspace(-4, 0, 41)
        smoothed = np.r_[np.linspace(2.0, 1.9, 35), np.linspace(1.0, 5.0, 6)]  # steep drop right before min
        suggested, steepest, at_min = suggest_lr(lrs, smoothed, max_fraction=0.1)
        assert steepest == at_min == pytest.approx(lrs[35])
        assert suggested == pytest.approx(0.1 * lrs[35])

    def test_rising_from_the_start(self):
        lrs = np.logspace(-3, 0, 10)
        suggested, steepest, at_min = suggest_lr(lrs, np.linspace(1, 5, 10), max_fraction=0.1)
        assert at_min == pytest.approx(1e-3) and suggested == pytest.approx(1e-4)

    def test_non_finite_points_ignored(self):
        lrs = np.logspace(-3, 0, 20)
        smoothed = np.r_[np.linspace(2, 1, 15), [np.nan, np.inf, np.inf, np.nan, np.nan]]
        assert suggest_lr(lrs, smoothed)[2] == pytest.approx(lrs[14])

    def test_all_nan(self):
        with pytest.raises(ValueError, match="no finite loss"):
            suggest_lr(np.logspace(-3, 0, 5), np.full(5, np.nan))


def test_sweep_logs_a_run_and_restores_state(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = make_batches(8, batch_size=32)
    x, y = data[0]
    F.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers exist: they must come back too
    model.eval()
    weights, opt_state = _state(model, opt)

    result = lr_range_test(
        model, opt, F.cross_entropy, data, start_lr=1e-4, end_lr=100.0, num_steps=80, logdir=tmp_path / "rt"
    )

    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert opt.param_groups[0]["lr"] == 0.05 and not model.training
    restored = opt.state_dict()["state"]
    for k, v in opt_state["state"].items():
        assert torch.equal(restored[k]["momentum_buffer"], v["momentum_buffer"])

    n = len(result.lrs)
    assert result.lrs[0] == pytest.approx(1e-4)
    ratios = result.lrs[1:] / result.lrs[:-1]
    np.testing.assert_allclose(ratios, (100.0 / 1e-4) ** (1 / 79))
    assert result.diverged_lr is not None and n < 80  # 100 is far too high: the sweep stops early
    assert 1e-4 <= result.suggested_lr <= result.min_loss_lr < result.diverged_lr

    run = read_logdir(str(tmp_path))["rt"]
    assert run.hparams["run_kind"] == "lr_range_test"
    assert run.hparams["suggested_lr"] == pytest.approx(result.suggested_lr)
    assert run.hparams["lr"] == 1e-4 and run.hparams["batch_size"] == 32
    np.testing.assert_allclose(run.signal("lr").values, result.lrs, rtol=1e-6)
    np.testing.assert_allclose(run.signal("loss").values, result.losses, rtol=1e-6)
    np.testing.assert_allclose(run.scalars["lrdoctor/extra/smoothed_loss"].values, result.smoothed, rtol=1e-6)
    assert result.to_json()["suggested_lr"] == result.suggested_lr


def test_without_logdir_writes_nothing(tmp_path, make_model, make_batches, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    result = lr_range_test(model, opt, F.cross_entropy, make_batches(3), num_steps=10, end_lr=1e-2)
    assert result.logdir is None and len(result.lrs) == 10 and result.diverged_lr is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_lr": 0}, "start_lr must be > 0"),
        ({"start_lr": 1.0, "end_lr": 0.5}, "end_lr must be > start_lr"),
        ({"num_steps": 1}, "num_steps must be an integer >= 2"),
        ({"smoothing": 0}, r"smoothing must be in \(0, 1\]"),
        ({"diverge_factor": 1.0}, "diverge_factor must be > 1"),
        ({"max_fraction": 2}, r"max_fraction must be in \(0, 1\]"),
    ],
)
def test_bad_arguments(make_model, kwargs, match):
    model = make_model()
    with pytest.raises(ValueError, match=match):
        lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, [], **kwargs)


def test_empty_data_is_an_error_and_state_is_kept(make_model):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="data yielded no batch"):
        lr_range_test(model, opt, F.cross_entropy, [])
    assert opt.param_groups[0]["lr"] == 0.1


def test_one_shot_iterator_ends_the_sweep(make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, opt, F.cross_entropy, iter(make_batches(7)), num_steps=20, end_lr=1e-2)
    assert len(result.lrs) == 7 and result.diverged_lr is None
