"""nan_loss: exact first non-finite step of loss or grad norm, lead-up, other causes named."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_nan_loss
from lrdoctor.analyzers.findings import Severity


@pytest.mark.parametrize("k", [0, 1, 57, 299])
def test_exact_first_nan_step(k):
    run = curves.make_run(loss=curves.with_nan(curves.decay(), k))
    (f,) = detect_nan_loss(run)
    assert f.step == k and f.severity is Severity.ERROR and f.evidence["nan_step"] == k


def test_loss_step_wins_and_earlier_grad_overflow_is_named():
    loss = curves.with_nan(curves.decay(), 100)
    grad = np.ones(300)
    grad[90] = np.inf
    (f,) = detect_nan_loss(curves.make_run(loss=loss, grad_norm=grad))
    assert f.step == 100 and f.signal == "loss"
    assert f.evidence["grad_norm_nan_step"] == 90 and "already non-finite at step 90" in f.message


def test_grad_norm_only():
    grad = np.ones(300)
    grad[90] = np.inf
    (f,) = detect_nan_loss(curves.make_run(loss=curves.decay(), grad_norm=grad))
    assert f.step == 90 and f.signal == "grad_norm"


def test_repeated_steps_use_raw_points():
    steps = np.repeat(np.arange(150), 2)
    loss = curves.decay(300)
    loss[201] = np.nan  # second point logged at step 100
    (f,) = detect_nan_loss(curves.make_run(loss=loss, steps=steps))
    assert f.step == 100


def test_lead_up_names_lr_raise_and_other_causes():
    lr = np.full(300, 0.01)
    lr[80:] = 0.5
    loss = curves.decay()
    loss[85:95] = np.geomspace(1.0, 1e6, 10)
    loss = curves.with_nan(loss, 95)
    (f,) = detect_nan_loss(curves.make_run(loss=loss, lr=lr))
    assert f.step == 95
    assert "raised from 0.01 to 0.5" in f.message and "loss rose" in f.message
    for cause in ("bad inputs", "log", "fp16"):
        assert cause in f.message
    assert "from 0.5 to 0.05-0.167" in f.fix


@pytest.mark.parametrize("loss", [curves.decay(), np.zeros(0)])
def test_quiet_without_nan(loss):
    assert detect_nan_loss(curves.make_run(loss=loss)) == []


def test_all_nan():
    (f,) = detect_nan_loss(curves.make_run(loss=np.full(10, np.nan)))
    assert f.step == 0
