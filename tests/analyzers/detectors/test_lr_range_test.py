"""lr_range_test: marked INFO with the suggested LR; never judged as training."""

import curves
import numpy as np

from lrdoctor.analyzers.detectors import detect_lr_range_test
from lrdoctor.analyzers.findings import Severity


def test_range_test_marked_with_suggestion():
    run = curves.make_run(
        loss=curves.diverging(),
        lr=np.geomspace(1e-5, 10, 300),
        hparams={"run_kind": "lr_range_test", "suggested_lr": 0.03},
    )
    (f,) = detect_lr_range_test(run)
    assert f.severity is Severity.INFO and f.evidence["suggested_lr"] == 0.03 and "0.03" in f.fix


def test_training_run_is_not_marked():
    assert detect_lr_range_test(curves.make_run(loss=curves.decay(), hparams={"run_kind": "train"})) == []
