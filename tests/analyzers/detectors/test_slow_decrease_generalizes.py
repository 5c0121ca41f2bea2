"""slow_decrease without assuming a loss floor of 0: judged by the curve's own pace and noise.

Table-driven: shapes that a too-low LR gives (a steady decline, whatever the floor or schedule)
fire; converged or still-improving healthy shapes (any floor, any starting level) stay quiet.
"""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers import Verdict, analyze_run
from lrdoctor.analyzers.detectors import detect_slow_decrease
from lrdoctor.analyzers.stats import late_fall_rate

N = 300
T = np.arange(N) / N
COSINE = 0.5 * (1 + np.cos(np.pi * T))


@pytest.mark.parametrize(
    ("loss", "lr"),
    [
        (curves.noisy(curves.floored(), 0.05), None),  # MSE floor 1.0, converged
        (curves.noisy(curves.floored(init=1.1, floor=0.35, rate=6), 0.05), None),  # starts small
        (curves.heavy_noise(curves.floored(), seed=3), None),  # heavy-tailed minibatch noise
        (curves.noisy(curves.floored(rate=3), 0.03), None),  # still improving after a fast start
        (curves.noisy(1.0 + 1.7 * (1 + 30 * T) ** -0.7, 0.03), None),  # power-law approach
        (curves.noisy(curves.floored(rate=6), 0.05), 0.01 * COSINE),  # cosine schedule
        (curves.noisy(1.37 - 0.6 * (1 - np.exp(-3 * T)), 0.06), None),  # small-batch RNN, floor ~0.77
    ],
    ids=["floor_1", "starts_small", "heavy_noise", "still_improving", "power_law", "cosine", "rnn_like"],
)
def test_healthy_shapes_with_nonzero_floor_are_not_slow(loss, lr):
    signals = {"loss": loss} if lr is None else {"loss": loss, "lr": lr}
    run = curves.make_run(**signals)
    assert detect_slow_decrease(run) == []
    assert analyze_run(run).verdict is Verdict.HEALTHY


@pytest.mark.parametrize(
    ("loss", "lr"),
    [
        (curves.noisy(2.7 - 0.6 * T, 0.01), None),  # MSE floor 1.0 far below: a steady decline
        (curves.noisy(2.303 - 0.8 * T, 0.01), None),  # cross-entropy, linear
        (curves.noisy(2.303 - 0.6 * np.cumsum(COSINE) / N * 2, 0.005), 1e-4 * COSINE),  # cosine, low LR
        (curves.noisy(2.303 - 0.5 * T**1.3, 0.01), None),  # still accelerating
    ],
    ids=["mse_linear", "ce_linear", "cosine_low_lr", "accelerating"],
)
def test_steady_declines_are_slow(loss, lr):
    signals = {"loss": loss} if lr is None else {"loss": loss, "lr": lr}
    (f,) = detect_slow_decrease(curves.make_run(**signals))
    assert f.evidence["late_fall_ratio"] >= 0.4


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        (curves.decay(rate=8), 0.0, 0.1),  # converged: ends far slower than its average pace
        (1 + np.exp(-2.1 * np.arange(N) / N), 0.35, 0.45),  # 2 time constants: the threshold
        (2.0 - np.linspace(0, 1, N), 0.8, 1.2),  # linear: keeps its pace
        (2.0 - np.linspace(0, 1, N) ** 2, 1.3, np.inf),  # accelerating
        (curves.noisy(np.full(N, 1.0), 0.2), 0.0, 0.0),  # flat noise: no significant fall
    ],
    ids=["converged", "two_time_constants", "linear", "accelerating", "flat_noise"],
)
def test_late_fall_rate(values, low, high):
    init = float(values[0])
    assert low <= late_fall_rate(values, init) <= high
