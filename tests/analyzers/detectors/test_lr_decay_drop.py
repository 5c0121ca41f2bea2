"""lr_decay_drop: INFO when a step decay is followed by a sharp drop; silent on smooth schedules."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_lr_decay_drop
from lrdoctor.analyzers.findings import Severity


def step_decay_run(drop=0.5):
    lr = np.where(np.arange(300) < 180, 0.1, 0.01)
    loss = curves.decay(300, floor=0.5, rate=10)
    loss[180:] = loss[180:] * drop
    return curves.make_run(loss=curves.noisy(loss, 0.05), lr=lr)


def test_drop_after_step_decay_is_info_with_numbers():
    (f,) = detect_lr_decay_drop(step_decay_run())
    assert f.severity is Severity.INFO and f.step == 180
    assert f.evidence["lr_before"] == 0.1 and f.evidence["lr_after"] == 0.01
    assert "from 0.1 to 0.01 at step 180" in f.message and "0.0316" in f.fix


def test_quiet_without_drop_or_with_smooth_schedules():
    assert detect_lr_decay_drop(step_decay_run(drop=1.0)) == []
    cosine = 0.1 * 0.5 * (1 + np.cos(np.pi * np.arange(300) / 300))
    assert detect_lr_decay_drop(curves.make_run(loss=curves.decay(), lr=cosine)) == []
    warm = 0.1 * np.minimum(1.0, (np.arange(300) + 1) / 30)
    assert detect_lr_decay_drop(curves.make_run(loss=curves.decay(), lr=warm)) == []
    assert detect_lr_decay_drop(curves.make_run(loss=curves.decay())) == []
