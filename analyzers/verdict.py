"""From findings (symptoms) to a verdict (cause) and a confidence.

Rules, in order:

1. An LR range test (hparams ``run_kind`` == "lr_range_test") is not a training run:
   ``inconclusive`` (its deliberate blow-up is no alarm; it carries an ``lr_range_test`` INFO).
2. A non-finite loss or grad norm (``nan_loss``) is ``lr_too_high`` however short the run;
   the finding's message names the other usual causes (bad inputs, log(0), fp16 overflow).
3. Fewer than `stats.MIN_POINTS` finite loss points, or no loss curve: ``inconclusive``.
4. A WARNING+ finding among `HIGH_CODES` (diverging, oscillating, stuck at chance):
   ``lr_too_high``.
5. A WARNING+ ``slow_decrease``: ``lr_too_low``.
6. A WARNING ``batch_lr_scaling`` (the run broke the linear scaling rule against a healthy
   sibling and ends clearly worse than it): ``lr_too_low`` if its LR is below the rule's,
   ``lr_too_high`` if above.
7. Otherwise ``healthy``. Gradient findings and LR-table context do not move the verdict: they
   are reported beside it.

Confidence (0..1) is a coarse, documented score, not a probability: ERROR evidence 0.9,
WARNING evidence 0.75, +0.05 per further agreeing finding (max 0.95); a healthy verdict 0.8,
0.6 when a WARNING finding (e.g. exploding gradients) sits beside it; x `CONFLICT_FACTOR` when
findings point both ways, or when "the loss barely moved in a calm run" is judged without a
gradient-norm curve (the calm is then seen on the loss alone, which an epoch mean smooths: a
blow-up inside the first epoch can hide there); scaled down for short runs
(x sqrt(points / `FULL_CONFIDENCE_POINTS`) below that many points); inconclusive 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrdoctor.analyzers.detectors.lr_range_test import is_range_test
from lrdoctor.analyzers.detectors.slow_decrease import BARELY_MOVED_PROGRESS
from lrdoctor.analyzers.findings import Finding, Severity, Verdict
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import FALL_P_VALUE, MIN_POINTS, signal_curve

HIGH_CODES = ("nan_loss", "loss_diverging", "loss_oscillating", "stuck_at_chance")
LOW_CODES = ("slow_decrease",)
FULL_CONFIDENCE_POINTS = 200  # loss points from which the run length no longer limits confidence
CONFLICT_FACTOR = 0.7  # confidence kept when the evidence is split or half-blind


def _evidence_confidence(hits: list[Finding]) -> float:
    base = 0.9 if any(f.severity is Severity.ERROR for f in hits) else 0.75
    return min(0.95, base + 0.05 * (len(hits) - 1))


def _calm_unseen(run: Run, low: list[Finding]) -> bool:
    """A "barely moved, calm" call made without a gradient-norm curve to show the calm."""
    if run.signal("grad_norm") is not None:
        return False
    return any(
        f.evidence.get("progress_ratio", 1.0) < BARELY_MOVED_PROGRESS
        or f.evidence.get("fall_p_value", 0.0) >= FALL_P_VALUE
        for f in low
    )


def decide(run: Run, findings: Sequence[Finding]) -> tuple[Verdict, float, str]:
    """The verdict for ``run`` given its findings.

    Args:
        run: the run (for its loss length and hyperparameters).
        findings: what the detectors found.

    Returns:
        (verdict, confidence 0..1, one-line summary of why).
    """
    if is_range_test(run):
        return Verdict.INCONCLUSIVE, 0.0, "LR range test: not judged as a training run"
    serious = [f for f in findings if f.severity.rank >= Severity.WARNING.rank]
    nan = [f for f in findings if f.code == "nan_loss"]
    if nan:
        return Verdict.LR_TOO_HIGH, 0.9, f"non-finite loss/grad norm at step {nan[0].step}"
    loss = signal_curve(run, "loss").finite_prefix()
    if len(loss) < MIN_POINTS:
        why = (
            "no training loss curve"
            if run.signal("loss") is None
            else (f"loss at only {len(loss)} steps (< {MIN_POINTS})")
        )
        return Verdict.INCONCLUSIVE, 0.0, f"too little data: {why}"
    scale = min(1.0, math.sqrt(len(loss) / FULL_CONFIDENCE_POINTS))
    high = [f for f in serious if f.code in HIGH_CODES]
    low = [f for f in serious if f.code in LOW_CODES]
    if high:
        conf = _evidence_confidence(high) * (CONFLICT_FACTOR if low else 1.0)
        return Verdict.LR_TOO_HIGH, round(conf * scale, 3), ", ".join(f.code for f in high)
    if low:
        conf = _evidence_confidence(low) * (CONFLICT_FACTOR if _calm_unseen(run, low) else 1.0)
        return Verdict.LR_TOO_LOW, round(conf * scale, 3), ", ".join(f.code for f in low)
    scaling = [f for f in serious if f.code == "batch_lr_scaling"]
    if scaling:
        low_side = scaling[0].evidence.get("off_by_ratio", 1.0) < 1.0
        verdict = Verdict.LR_TOO_LOW if low_side else Verdict.LR_TOO_HIGH
        return verdict, round(0.6 * scale, 3), "batch_lr_scaling: worse than a healthy sibling, LR not scaled"
    conf = 0.6 if serious else 0.8
    why = "loss falls and settles; no LR symptom" + (
        f" (but: {', '.join(f.code for f in serious)})" if serious else ""
    )
    return Verdict.HEALTHY, round(conf * scale, 3), why
