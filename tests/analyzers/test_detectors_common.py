"""Every registered detector on every synthetic case and edge case: a list of JSON-safe
findings with known codes, deterministic, input untouched, steps inside the run."""

import copy
import json

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import CROSS_RUN_DETECTORS, DETECTORS, DetectorContext
from lrdoctor.analyzers.findings import FINDING_CODES, Finding, Verdict

N = 300
CASES = {
    "healthy": dict(
        loss=curves.noisy(curves.decay()), grad_norm=curves.noisy(np.ones(N), 0.3), lr=np.full(N, 0.1)
    ),
    "slow": dict(loss=curves.slow(), lr=np.full(N, 1e-4)),
    "oscillating": dict(loss=curves.oscillating()),
    "diverging": dict(loss=curves.diverging(), lr=np.full(N, 1.0)),
    "nan": dict(loss=curves.with_nan(curves.decay(), 100), grad_norm=curves.with_nan(np.ones(N), 99)),
    "stuck": dict(loss=curves.stuck(), accuracy=np.full(N, 0.1)),
    "empty": dict(loss=np.zeros(0)),
    "all_nan": dict(loss=np.full(N, np.nan), grad_norm=np.full(N, np.nan)),
    "one_point": dict(loss=np.array([2.3])),
    "constant": dict(loss=np.full(N, 1.0), grad_norm=np.zeros(N)),
    "inf": dict(loss=np.full(N, np.inf)),
    "no_loss": dict(grad_norm=np.ones(N)),
    "negative_loss": dict(loss=-curves.decay()),
    "zero_loss": dict(loss=np.zeros(N)),
}
HP = {"optimizer": "SGD", "model_kind": "rnn", "batch_size": 64, "num_classes": 10}


def runs():
    for name, sig in CASES.items():
        yield name, curves.make_run(name, hparams=HP, **sig)
    steps = np.repeat(np.arange(N // 2), 2)  # two points per step
    yield (
        "repeated_steps",
        curves.make_run("repeated_steps", steps=steps, loss=curves.diverging(), hparams=HP),
    )


RUNS = dict(runs())
PEER = curves.make_run("peer", loss=curves.decay(), lr=np.full(N, 0.01), hparams={**HP, "batch_size": 8})
CTX = DetectorContext(
    peers=(PEER,), peer_verdicts={"peer": Verdict.HEALTHY, **{n: Verdict.LR_TOO_LOW for n in RUNS}}
)


@pytest.mark.parametrize("detect", DETECTORS + CROSS_RUN_DETECTORS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", list(RUNS))
def test_detector_contract(detect, name):
    run = RUNS[name]
    before = {t: (s.steps.copy(), s.values.copy()) for t, s in run.scalars.items()}
    hp_before = copy.deepcopy(run.hparams)
    out = detect(run, CTX)
    assert isinstance(out, list) and all(isinstance(f, Finding) for f in out)
    assert out == detect(run, CTX) or [f.to_json() for f in out] == [f.to_json() for f in detect(run, CTX)]
    for f in out:
        assert f.code in FINDING_CODES and f.code in detect.__name__
        assert f.message and f.fix
        assert f.steps[0] <= f.steps[1]
        json.dumps(f.to_json(), allow_nan=False)
    for t, s in run.scalars.items():
        np.testing.assert_array_equal(s.steps, before[t][0])
        np.testing.assert_array_equal(s.values, before[t][1])
    assert run.hparams == hp_before


def test_every_code_has_a_detector():
    names = {d.__name__.removeprefix("detect_") for d in DETECTORS + CROSS_RUN_DETECTORS}
    assert names == set(FINDING_CODES)
