"""Verdict rules: NaN beats length, too little data, range tests, high vs low, confidence."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers import Verdict, analyze_run


@pytest.mark.parametrize(
    ("signals", "hparams", "verdict"),
    [
        (dict(loss=curves.noisy(curves.decay())), {}, Verdict.HEALTHY),
        (dict(loss=curves.noisy(curves.slow(total_drop=0.2), 0.005)), {}, Verdict.LR_TOO_LOW),
        (dict(loss=curves.diverging()), {}, Verdict.LR_TOO_HIGH),
        (dict(loss=curves.oscillating()), {}, Verdict.LR_TOO_HIGH),
        (dict(loss=curves.stuck()), {"num_classes": 10}, Verdict.LR_TOO_HIGH),
        (dict(loss=curves.with_nan(curves.decay(), 150)), {}, Verdict.LR_TOO_HIGH),
        (dict(loss=curves.decay(10)), {}, Verdict.INCONCLUSIVE),
        (dict(grad_norm=np.ones(300)), {}, Verdict.INCONCLUSIVE),
        (
            dict(loss=curves.diverging(), lr=np.geomspace(1e-5, 10, 300)),
            {"run_kind": "lr_range_test"},
            Verdict.INCONCLUSIVE,
        ),
    ],
    ids=["healthy", "slow", "diverging", "oscillating", "stuck", "nan", "short", "no_loss", "range_test"],
)
def test_verdicts(signals, hparams, verdict):
    rep = analyze_run(curves.make_run(hparams=hparams, **signals))
    assert rep.verdict is verdict
    assert 0.0 <= rep.confidence <= 1.0 and rep.summary


def test_nan_in_a_short_run_is_still_lr_too_high():
    rep = analyze_run(curves.make_run(loss=np.array([2.3, 2.5, 9.0, np.nan])))
    assert rep.verdict is Verdict.LR_TOO_HIGH
    assert rep.top.code == "nan_loss" and rep.top.step == 3


def test_range_test_has_no_high_alarm_verdict_and_says_why():
    run = curves.make_run(
        loss=curves.with_nan(curves.diverging(), 280), hparams={"run_kind": "lr_range_test"}
    )
    rep = analyze_run(run)
    assert rep.verdict is Verdict.INCONCLUSIVE and "range test" in rep.summary
    assert "lr_range_test" in rep.codes()


def test_findings_most_severe_first_and_confidence_grows_with_length():
    rep = analyze_run(
        curves.make_run(
            loss=curves.diverging(), lr=np.full(300, 1.0), hparams={"optimizer": "SGD", "model_kind": "cnn"}
        )
    )
    ranks = [f.severity.rank for f in rep.findings]
    assert ranks == sorted(ranks, reverse=True)
    short = analyze_run(curves.make_run(loss=curves.diverging(60, start=30, growth=0.1)))
    assert short.verdict is Verdict.LR_TOO_HIGH and short.confidence < rep.confidence


def test_healthy_noise_seeds_stay_healthy():
    for seed in range(10):
        rep = analyze_run(curves.make_run(loss=curves.noisy(curves.decay(), 0.3, seed)))
        assert rep.verdict is Verdict.HEALTHY, seed


def test_whole_curve_finding_step_is_when_it_became_detectable():
    rep = analyze_run(curves.make_run(loss=curves.diverging(start=150, growth=0.05)))
    f = next(f for f in rep.findings if f.code == "loss_diverging")
    assert 150 < f.step < 299  # seen only once the loss had climbed, before the run ended
    assert f.steps[0] <= 160  # the shaded window starts where the climb began
    assert f.step in {k * 300 // 16 for k in range(1, 16)}  # one of the evenly spaced checkpoints


def test_many_points_at_few_steps_are_judged_in_order():
    steps = np.repeat(np.arange(10), 30)  # per-batch losses logged against the epoch
    run = curves.make_run(loss=curves.noisy(curves.slow(300, total_drop=0.3), 0.005), steps=steps)
    assert analyze_run(run).verdict is Verdict.LR_TOO_LOW


@pytest.mark.parametrize(("with_grad", "confidence"), [(True, 0.75), (False, 0.525)])
def test_barely_moved_without_grad_norm_is_less_sure(with_grad, confidence):
    # "Calm" is half-blind without a gradient norm (an epoch mean can hide a blow-up).
    signals = {"loss": curves.noisy(curves.slow(total_drop=0.01), 0.003)}
    if with_grad:
        signals["grad_norm"] = curves.noisy(np.ones(300), 0.1)
    rep = analyze_run(curves.make_run(**signals))
    assert rep.verdict is Verdict.LR_TOO_LOW and rep.confidence == pytest.approx(confidence)


def test_steady_slow_decline_keeps_its_confidence_without_grad_norm():
    rep = analyze_run(curves.make_run(loss=curves.noisy(curves.slow(total_drop=0.3), 0.01)))
    assert rep.verdict is Verdict.LR_TOO_LOW and rep.confidence == pytest.approx(0.75)
