"""stuck_at_chance: flat at chance with turbulence (spike) vs flat and calm (LR too low)."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_stuck_at_chance


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
