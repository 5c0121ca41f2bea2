"""slow_decrease: calm, steady, far from a plateau -> raise the LR, with numbers."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_slow_decrease
from lrdoctor.analyzers.findings import Severity


def test_linear_slow_decline_fires_with_fix_numbers():
    run = curves.make_run(loss=curves.noisy(curves.slow(total_drop=0.3), 0.01), lr=np.full(300, 0.001))
    (f,) = detect_slow_decrease(run)
    assert f.severity is Severity.WARNING
    assert "raise the LR from 0.001 to 0.003-0.01" in f.fix


def test_barely_moved_fires():
    run = curves.make_run(loss=curves.noisy(curves.slow(total_drop=0.01), 0.003))
    (f,) = detect_slow_decrease(run)
    assert f.evidence["progress_ratio"] < 0.1


def test_quiet_on_converged_decay_and_cosine():
    for seed in range(3):
        assert detect_slow_decrease(curves.make_run(loss=curves.noisy(curves.decay(), 0.2, seed))) == []
    lr = 0.1 * 0.5 * (1 + np.cos(np.pi * np.arange(300) / 300))
    assert detect_slow_decrease(curves.make_run(loss=curves.noisy(curves.decay(rate=6), 0.1), lr=lr)) == []


def test_quiet_on_turbulent_or_rising_loss():
    assert detect_slow_decrease(curves.make_run(loss=curves.stuck())) == []
    assert detect_slow_decrease(curves.make_run(loss=curves.diverging())) == []
    assert detect_slow_decrease(curves.make_run(loss=np.zeros(0))) == []


@pytest.mark.parametrize(("dof", "seed"), [(4, 0), (4, 1), (8, 2), (16, 4)])
def test_flat_heavy_tailed_regression_barely_moved(dof, seed):
    # MSE minibatch noise throws single points 2-3x up; the run is still calm: it did not move.
    run = curves.make_run(
        loss=curves.flat_regression(dof=dof, seed=seed), grad_norm=curves.noisy(np.ones(300), 0.3, seed)
    )
    (f,) = detect_slow_decrease(run)
    assert "barely moved" in f.message and f.evidence["fall_p_value"] >= 0.01


def test_too_low_under_step_decay_judged_while_the_lr_was_high():
    # A steady linear decline at LR 0.01 for 60% of the run, then the LR drops 10x and the loss
    # flattens: the second half alone looks converged, the high-LR part says "still falling".
    t = np.arange(300)
    lr = np.where(t < 180, 0.01, 0.001)
    loss = np.where(t < 180, 2.3 * (1 - 0.25 * t / 180), 2.3 * 0.75 * (1 - 0.025 * (t - 180) / 120))
    (f,) = detect_slow_decrease(curves.make_run(loss=curves.noisy(loss, 0.01), lr=lr))
    assert "high-LR part" in f.message and "from 0.01 to 0.03-0.1" in f.fix


def test_barely_moved_but_rising_is_quiet():
    loss = curves.noisy(np.linspace(2.30, 2.36, 300), 0.002)
    assert detect_slow_decrease(curves.make_run(loss=loss)) == []
