"""loss_diverging: blow-up above the start, rebound from the minimum, spike never recovered."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_loss_diverging
from lrdoctor.analyzers.findings import Severity


def test_exponential_blow_up_is_error_near_onset():
    (f,) = detect_loss_diverging(curves.make_run(loss=curves.diverging(start=150), lr=np.full(300, 0.3)))
    assert f.severity is Severity.ERROR
    assert 140 <= f.step <= 160  # where the climb began
    assert "from 0.3 to 0.03-0.1" in f.fix


def test_blow_up_right_after_lr_rise_names_that_lr():
    lr = np.where(np.arange(300) < 200, 0.01, 0.2)
    loss = curves.decay()
    loss[200:] = loss[200] * np.exp(0.05 * np.arange(100))
    (f,) = detect_loss_diverging(curves.make_run(loss=loss, lr=lr))
    assert "broke at LR 0.2" in f.message
    assert f.evidence["lr_at_onset"] == 0.2


def test_spike_without_recovery_is_warning():
    (f,) = detect_loss_diverging(curves.make_run(loss=curves.stuck()))
    assert f.severity is Severity.WARNING and f.step == 2


def test_quiet_on_healthy_noise_and_schedules():
    for seed in range(5):
        loss = curves.noisy(curves.decay(), 0.3, seed)
        assert detect_loss_diverging(curves.make_run(loss=loss)) == []
    warm = curves.noisy(curves.decay(), 0.1)
    lr = np.minimum(1.0, (np.arange(300) + 1) / 30) * 0.1
    assert detect_loss_diverging(curves.make_run(loss=warm, lr=lr)) == []


def test_short_and_empty():
    assert detect_loss_diverging(curves.make_run(loss=curves.diverging()[:20])) == []
    assert detect_loss_diverging(curves.make_run(loss=np.zeros(0))) == []
    assert detect_loss_diverging(curves.make_run(grad_norm=np.ones(100))) == []


def test_heavy_tailed_noise_outlier_on_a_flat_run_is_not_a_blow_up():
    # A flat MSE (LR too low) with chi-square minibatch noise and one 2.5x outlier: no damage
    # after it, a handful of robust sigmas: noise, not a blow-up.
    loss = curves.heavy_noise(np.full(300, 1.0), dof=16, seed=5)
    loss[100] = 2.5
    assert detect_loss_diverging(curves.make_run(loss=loss)) == []


def test_blow_up_that_leaves_the_loss_higher_is_a_warning():
    loss = curves.noisy(np.full(300, 1.0), 0.05, seed=2)
    loss[3] = 3.0
    loss[4:40] = 1.4  # the model was damaged: the loss stays up after the spike
    loss[40:] = curves.noisy(np.full(260, 0.9), 0.05, seed=3)
    (f,) = detect_loss_diverging(curves.make_run(loss=loss))
    assert f.severity is Severity.WARNING and f.evidence["peak_ratio"] >= 2.0


@pytest.mark.parametrize(("dof", "seed"), [(4, 0), (4, 1), (8, 2), (8, 6), (16, 1)])
def test_quiet_on_flat_heavy_tailed_regression(dof, seed):
    # Single points jump 2-3x and 5-point medians swing: neither a spike that "never recovered"
    # nor a climb back from the lowest block is real unless it stands out of the noise.
    run = curves.make_run(loss=curves.flat_regression(dof=dof, seed=seed))
    assert detect_loss_diverging(run) == []


def test_rebound_over_few_epoch_points_fires():
    # 40 epoch means: down from 124 to 80, back up to 142 (too few points for a block test,
    # but the last half rises steadily).
    loss = np.r_[np.linspace(124, 80, 20), np.linspace(80, 142, 20)]
    (f,) = detect_loss_diverging(curves.make_run(loss=curves.noisy(loss, 0.08, 2)))
    assert f.severity is Severity.ERROR and "climbed back" in f.message
