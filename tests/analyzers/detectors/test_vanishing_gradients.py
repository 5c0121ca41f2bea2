"""vanishing_gradients: grad norm collapses while the loss is flat; not when the loss converged."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_vanishing_gradients


def test_collapse_with_flat_loss():
    g = np.geomspace(1.0, 1e-6, 300)
    (f,) = detect_vanishing_gradients(curves.make_run(loss=np.full(300, 2.3), grad_norm=g))
    assert f.evidence["collapse_ratio"] <= 1e-3 and f.signal == "grad_norm"


def test_quiet_when_loss_converged():
    g = np.geomspace(1.0, 1e-6, 300)
    assert detect_vanishing_gradients(curves.make_run(loss=curves.decay(), grad_norm=g)) == []


def test_quiet_on_steady_norm_and_missing_data():
    assert detect_vanishing_gradients(curves.make_run(loss=np.full(300, 2.3), grad_norm=np.ones(300))) == []
    assert detect_vanishing_gradients(curves.make_run(loss=np.full(300, 2.3))) == []
