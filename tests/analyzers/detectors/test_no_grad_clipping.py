"""no_grad_clipping: RNN without clipping; INFO alone, WARNING with exploding gradients."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_no_grad_clipping
from lrdoctor.analyzers.findings import Severity


def test_rnn_without_clip_is_info():
    (f,) = detect_no_grad_clipping(
        curves.make_run(loss=curves.decay(), grad_norm=np.ones(300), hparams={"model_kind": "rnn"})
    )
    assert f.severity is Severity.INFO


def test_rnn_with_spikes_is_warning_with_max_norm():
    g = curves.noisy(np.ones(300), 0.1)
    g[[100, 150, 200]] = 80.0
    (f,) = detect_no_grad_clipping(curves.make_run(grad_norm=g, hparams={"model_kind": "lstm"}))
    assert f.severity is Severity.WARNING and f.step == 100 and "clip_grad_norm_" in f.fix


def test_quiet_when_clipped_or_not_rnn():
    assert (
        detect_no_grad_clipping(
            curves.make_run(grad_norm=np.ones(300), hparams={"model_kind": "rnn", "max_grad_norm": 1.0})
        )
        == []
    )
    assert (
        detect_no_grad_clipping(curves.make_run(grad_norm=np.ones(300), hparams={"model_kind": "cnn"})) == []
    )
    assert detect_no_grad_clipping(curves.make_run(grad_norm=np.ones(300))) == []
