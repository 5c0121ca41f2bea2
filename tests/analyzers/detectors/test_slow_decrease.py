"""slow_decrease: calm, steady, far from a plateau -> raise the LR, with numbers."""

import curves
import numpy as np

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
