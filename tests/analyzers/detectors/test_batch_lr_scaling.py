"""batch_lr_scaling: linear rule against a healthy sibling with another batch size."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import DetectorContext, detect_batch_lr_scaling
from lrdoctor.analyzers.findings import Severity, Verdict


def run(name, batch, lr):
    return curves.make_run(
        name,
        loss=curves.decay(),
        lr=np.full(300, lr),
        hparams={"batch_size": batch, "optimizer": "SGD", "model_kind": "cnn"},
    )


def test_unscaled_lr_against_healthy_reference():
    base, big = run("batch_32", 32, 0.01), run("batch_256_unscaled", 256, 0.01)
    ctx = DetectorContext(
        peers=(base,), peer_verdicts={"batch_32": Verdict.HEALTHY, "batch_256_unscaled": Verdict.LR_TOO_LOW}
    )
    (f,) = detect_batch_lr_scaling(big, ctx)
    assert f.severity is Severity.WARNING
    assert f.fix == "with batch 256 the linear rule gives LR 0.08 from the batch-32 run's 0.01"
    assert f.evidence["rule_lr"] == 0.08


def test_scaled_lr_or_no_healthy_reference_is_quiet():
    base, big = run("a", 32, 0.01), run("b", 256, 0.08)
    ok = DetectorContext(peers=(base,), peer_verdicts={"a": Verdict.HEALTHY, "b": Verdict.HEALTHY})
    assert detect_batch_lr_scaling(big, ok) == []
    bad_ref = DetectorContext(peers=(base,), peer_verdicts={"a": Verdict.LR_TOO_HIGH})
    assert detect_batch_lr_scaling(run("b", 256, 0.01), bad_ref) == []
    assert detect_batch_lr_scaling(big, None) == []


def test_other_folder_or_optimizer_is_not_a_reference():
    base = run("x/a", 32, 0.01)
    other = curves.make_run(
        "y/b",
        loss=curves.decay(),
        lr=np.full(300, 0.01),
        hparams={"batch_size": 256, "optimizer": "SGD", "model_kind": "cnn"},
    )
    ctx = DetectorContext(peers=(base,), peer_verdicts={"x/a": Verdict.HEALTHY})
    assert detect_batch_lr_scaling(other, ctx) == []


def test_most_similar_healthy_sibling_is_the_reference():
    note = {"note": "LR 0.05 for both batch sizes"}
    a = curves.make_run(
        "batch_32",
        loss=curves.decay(),
        lr=np.full(300, 0.05),
        hparams={"batch_size": 32, "optimizer": "SGD", **note},
    )
    b = curves.make_run(
        "other", loss=curves.decay(), lr=np.full(300, 0.05), hparams={"batch_size": 64, "optimizer": "SGD"}
    )
    big = curves.make_run(
        "batch_256",
        loss=curves.decay(),
        lr=np.full(300, 0.05),
        hparams={"batch_size": 256, "optimizer": "SGD", **note},
    )
    ctx = DetectorContext(
        peers=(a, b),
        peer_verdicts={"batch_32": Verdict.HEALTHY, "other": Verdict.HEALTHY, "batch_256": Verdict.HEALTHY},
    )
    (f,) = detect_batch_lr_scaling(big, ctx)
    assert f.evidence["reference_batch_size"] == 32 and f.evidence["rule_lr"] == 0.4


def test_the_healthy_base_gets_nothing_from_a_worse_sibling():
    # Both healthy on the first pass; the batch-256 run ended far worse: it is not a base for
    # the batch-32 run that worked (the rule would point the wrong way), only the reverse.
    small = curves.make_run(
        "batch_32", loss=curves.decay(floor=0.001), lr=np.full(300, 0.05), hparams={"batch_size": 32}
    )
    big = curves.make_run(
        "batch_256", loss=curves.decay(floor=0.13), lr=np.full(300, 0.05), hparams={"batch_size": 256}
    )
    verdicts = {"batch_32": Verdict.HEALTHY, "batch_256": Verdict.HEALTHY}
    assert detect_batch_lr_scaling(small, DetectorContext(peers=(big,), peer_verdicts=verdicts)) == []
    (f,) = detect_batch_lr_scaling(big, DetectorContext(peers=(small,), peer_verdicts=verdicts))
    assert f.fix == "with batch 256 the linear rule gives LR 0.4 from the batch-32 run's 0.05"
    assert f.severity is Severity.WARNING  # ends 130x worse than the base


@pytest.mark.parametrize(
    ("lr", "flagged"),
    [(0.01, True), (0.015, True), (0.001, False), (0.0001, False)],  # base 0.01 at batch 32
)
def test_only_an_lr_carried_over_from_the_base_is_flagged(lr, flagged):
    # batch 256 from a batch-32 base at 0.01: rule 0.08. An LR 10x or 100x below the base's was
    # not carried over; it is simply another LR (the curves judge it).
    base, other = run("a", 32, 0.01), run("b", 256, lr)
    ctx = DetectorContext(peers=(base,), peer_verdicts={"a": Verdict.HEALTHY, "b": Verdict.LR_TOO_LOW})
    assert bool(detect_batch_lr_scaling(other, ctx)) is flagged


def test_range_tests_neither_get_it_nor_serve_as_base():
    hp = {"batch_size": 32, "optimizer": "SGD", "model_kind": "cnn", "run_kind": "lr_range_test"}
    range_test = curves.make_run("rt", loss=curves.decay(), lr=np.full(300, 0.01), hparams=hp)
    big = run("b", 256, 0.01)
    ctx = DetectorContext(peers=(range_test,), peer_verdicts={"rt": Verdict.HEALTHY, "b": Verdict.HEALTHY})
    assert detect_batch_lr_scaling(big, ctx) == []
    ctx = DetectorContext(peers=(big,), peer_verdicts={"rt": Verdict.HEALTHY, "b": Verdict.HEALTHY})
    assert detect_batch_lr_scaling(range_test, ctx) == []
