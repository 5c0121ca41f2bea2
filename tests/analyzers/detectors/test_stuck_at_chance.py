"""stuck_at_chance: flat at chance with turbulence (spike) vs flat and calm (LR too low)."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_stuck_at_chance
from lrdoctor.analyzers.detectors.stuck_at_chance import chance_level
from lrdoctor.analyzers.stats import loss_profile


def test_spike_then_chance_fires_with_chance_figures():
    acc = np.full(300, 0.1)
    run = curves.make_run(
        loss=curves.stuck(), accuracy=acc, lr=np.full(300, 0.3), hparams={"num_classes": 10}
    )
    (f,) = detect_stuck_at_chance(run)
    assert abs(f.evidence["chance_loss"] - np.log(10)) < 1e-12
    assert f.evidence["chance_accuracy"] == 0.1 and "chance is 0.1" in f.message
    assert "from 0.3 to 0.03-0.1" in f.fix


def test_grad_spike_alone_counts_as_turbulence():
    loss = curves.noisy(np.full(300, 2.3), 0.005)
    grad = np.ones(300)
    grad[5] = 50.0
    (f,) = detect_stuck_at_chance(curves.make_run(loss=loss, grad_norm=grad))
    assert f.evidence["grad_spike_ratio"] >= 4


def test_calm_flat_loss_is_not_stuck():
    loss = curves.noisy(curves.slow(total_drop=0.01), 0.005)
    assert detect_stuck_at_chance(curves.make_run(loss=loss, grad_norm=curves.noisy(np.ones(300), 0.1))) == []


def test_progress_means_not_stuck():
    assert detect_stuck_at_chance(curves.make_run(loss=curves.decay())) == []
    assert detect_stuck_at_chance(curves.make_run(loss=np.zeros(0))) == []


@pytest.mark.parametrize(("dof", "seed"), [(4, 0), (4, 1), (8, 2), (16, 3)])
def test_flat_heavy_tailed_regression_is_not_stuck(dof, seed):
    # An MSE on noisy targets with an LR far too low: single points jump 2-3x (heavy right
    # tail) but the model barely moves; no classification evidence, calm gradients.
    run = curves.make_run(
        loss=curves.flat_regression(dof=dof, seed=seed), grad_norm=curves.noisy(np.ones(300), 0.3, seed)
    )
    assert detect_stuck_at_chance(run) == []


@pytest.mark.parametrize(("first_over_chance", "fires"), [(1.5, True), (1.02, False)])
def test_epoch_means_falling_to_chance(first_over_chance, fires):
    # Keras-style epoch means (50 points, no grad norm, no hparams): a blow-up inside the first
    # epoch only shows as a first mean far above ln(10), then the loss sits at exactly ln(10).
    loss = curves.noisy(np.full(50, np.log(10)), 0.001)
    loss[0] = first_over_chance * np.log(10)
    found = detect_stuck_at_chance(curves.make_run(loss=loss))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence["chance_loss"] == pytest.approx(np.log(10))
        assert "far worse than a uniform guess" in found[0].message


def test_loss_still_falling_is_not_stuck_even_with_grad_spikes():
    loss = curves.noisy(curves.slow(total_drop=0.08), 0.003)
    grad = np.ones(300)
    grad[50] = 20.0
    assert detect_stuck_at_chance(curves.make_run(loss=loss, grad_norm=grad)) == []


@pytest.mark.parametrize(
    ("values", "hparams", "accuracy", "expected"),
    [
        (curves.noisy(np.full(100, np.log(10)), 0.001), {}, None, (10, True)),
        (curves.flat_regression(level=0.72, dof=8), {}, None, None),  # near ln 2 but dips below it
        (curves.noisy(np.full(100, 0.3), 0.001), {}, None, None),  # below ln 2: no k
        (curves.noisy(np.full(100, np.log(4)), 0.01), {"num_classes": 4}, None, (4, True)),
        (curves.noisy(np.full(100, 0.5), 0.01), {"num_classes": 4}, None, (4, False)),
        (curves.noisy(np.full(100, 2.0), 0.01), {"num_classes": 10}, np.full(100, 0.1), (10, True)),
        (curves.noisy(np.full(100, 0.2), 0.01), {"num_classes": 10}, np.full(100, 0.9), (10, False)),
    ],
)
def test_chance_level(values, hparams, accuracy, expected):
    signals = {"loss": values} if accuracy is None else {"loss": values, "accuracy": accuracy}
    run = curves.make_run(hparams=hparams, **signals)
    assert chance_level(run, loss_profile(run)) == expected
