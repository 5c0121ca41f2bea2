"""loss_oscillating: swings as large as the achieved decrease, vs ordinary minibatch noise."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_loss_oscillating
from lrdoctor.analyzers.findings import Severity


def test_large_swings_without_trend_fire():
    (f,) = detect_loss_oscillating(curves.make_run(loss=curves.oscillating(), lr=np.full(300, 0.5)))
    assert f.severity is Severity.WARNING and f.step == 150
    assert f.evidence["noise_over_gain_ratio"] >= 0.5
    assert "from 0.5 to 0.05-0.167" in f.fix


def test_quiet_on_heavy_minibatch_noise():
    for seed in range(5):
        loss = curves.noisy(curves.decay(), 0.5, seed)  # +-50% per step, yet a clear decrease
        assert detect_loss_oscillating(curves.make_run(loss=loss)) == []


def test_quiet_on_step_decay_drop():
    loss = curves.decay(300, rate=4)
    loss[200:] *= 0.5
    assert detect_loss_oscillating(curves.make_run(loss=curves.noisy(loss, 0.05))) == []


def test_empty_and_all_nan():
    assert detect_loss_oscillating(curves.make_run(loss=np.zeros(0))) == []
    assert detect_loss_oscillating(curves.make_run(loss=np.full(100, np.nan))) == []


def test_fast_drop_then_wandering_back_up_fires():
    rng = np.random.default_rng(1)
    loss = np.r_[2.3, 1.6 + 0.3 * np.sin(np.arange(99) / 6) + 0.05 * rng.standard_normal(99)]
    loss[60:] += 0.15  # ends no lower than the best of its first 20%
    (f,) = detect_loss_oscillating(curves.make_run(loss=loss))
    assert f.evidence["wander_ratio"] >= 0.5 and "gained nothing" in f.message


def test_steady_plateau_after_fast_drop_is_quiet():
    loss = np.r_[2.3, curves.noisy(np.full(99, 0.4), 0.05)]
    assert detect_loss_oscillating(curves.make_run(loss=loss)) == []


@pytest.mark.parametrize(("dof", "seed"), [(4, 0), (4, 1), (8, 2), (16, 3), (16, 5)])
def test_quiet_on_flat_heavy_tailed_regression(dof, seed):
    # Its block medians wander by noise alone and any "decrease" is a fluke of where the start
    # was measured: without a real fall, a real climb or growing swings it is no oscillation.
    run = curves.make_run(loss=curves.flat_regression(dof=dof, seed=seed))
    assert detect_loss_oscillating(run) == []


def test_blow_up_in_mid_run_then_partial_recovery_fires():
    # One-cycle-like: the loss falls at a low LR, climbs 7x while the LR peaks, and ends far
    # above its early best although below its start.
    t = np.arange(400)
    loss = np.interp(t, [0, 60, 120, 160, 240, 400], [1.6, 0.4, 0.4, 3.0, 3.0, 0.8])
    (f,) = detect_loss_oscillating(curves.make_run(loss=curves.noisy(loss, 0.3, 1)))
    assert f.evidence["wander_ratio"] >= 0.5
