"""exploding_gradients: spikes vs the trailing median, growth, clip threshold from healthy steps."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_exploding_gradients
from lrdoctor.analyzers.findings import Severity


def spiky(n=300, at=(100, 180, 250), height=50.0):
    g = curves.noisy(np.ones(n), 0.1, 3)
    for k in at:
        g[k] = height
    return g


def test_spikes_fire_at_first_spike_with_percentile_clip():
    g = spiky()
    (f,) = detect_exploding_gradients(curves.make_run(loss=curves.decay(), grad_norm=g))
    assert f.severity is Severity.WARNING and f.step == 100 and f.evidence["spike_count"] == 3
    calm = np.delete(g, [100, 180, 250])
    assert abs(f.evidence["suggested_max_norm"] - np.percentile(calm, 95)) < 1e-12
    assert f"max_norm={f.evidence['suggested_max_norm']:.3g}" in f.fix


def test_single_spike_is_info():
    (f,) = detect_exploding_gradients(curves.make_run(grad_norm=spiky(at=(150,))))
    assert f.severity is Severity.INFO


def test_sustained_growth():
    g = np.geomspace(0.1, 100.0, 300)
    (f,) = detect_exploding_gradients(curves.make_run(grad_norm=g))
    assert f.evidence["growth_ratio"] >= 100 and f.severity is Severity.WARNING


def test_quiet_on_heavy_tailed_converged_norms_and_decay():
    rng = np.random.default_rng(0)
    g = np.geomspace(1.0, 0.001, 300) * np.exp(1.0 * rng.standard_normal(300))
    assert [
        f for f in detect_exploding_gradients(curves.make_run(grad_norm=g)) if f.severity is not Severity.INFO
    ] == []
    assert detect_exploding_gradients(curves.make_run(grad_norm=curves.noisy(np.ones(300), 0.3))) == []


def test_clipped_run_suggests_lower_lr():
    run = curves.make_run(grad_norm=spiky(), hparams={"grad_clip": 1.0})
    (f,) = detect_exploding_gradients(run)
    assert "max_norm=1" in f.fix and "before clipping" in f.message


def test_short_and_nan():
    assert detect_exploding_gradients(curves.make_run(grad_norm=np.ones(10))) == []
    assert detect_exploding_gradients(curves.make_run(grad_norm=np.full(100, np.nan))) == []
