"""``stuck_at_chance``: the loss made no progress (accuracy at chance level) while the run was
turbulent -- loss or gradient-norm spikes show the updates were large, not small.

A flat loss alone does not say which way the LR is off: a tiny LR also leaves the loss flat (that
is `slow_decrease`). What tells them apart is turbulence: with a tiny LR the model barely moves,
so the loss never jumps above its start and the gradient norm stays steady; with an LR too high
the first updates throw the model off (loss spike, gradient-norm spike) and it settles at the
loss of a constant guess (ln(num_classes) for cross-entropy).

"Flat" and "turbulent" must be beyond the noise: a regression loss (MSE on noisy targets) has a
heavy right tail, so single points jump 2-3x its level and a 5-point start can sit anywhere.
Flat means no significant fall (a rank test, `stats.fall_p_value`) or under 10% progress; a loss
spike counts only when it did damage (`is_damaging_spike`) or the run is known to sit at chance
(`chance_level`: classification evidence), and a grad-norm spike always. A loss still falling
significantly is not stuck, unless it is only falling back to a classifier's chance level.
Epoch-level logging hides the blow-up in the first epoch's mean and logs no grad norm: a first
point far above ln(k) (a loss spike's ratio) that falls to exactly ln(k) and stays is the sign.
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.analyzers.detectors._fixes import lower_lr
from lrdoctor.analyzers.detectors.context import DetectorContext, num_classes
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import (
    END_FRACTION,
    FALL_P_VALUE,
    LossProfile,
    fmt,
    loss_profile,
    signal_curve,
)

STUCK_PROGRESS = 0.1  # progress (fraction of the initial loss removed) below which the loss is stuck
TURBULENT_PEAK_RATIO = 1.4  # a loss point this many times the initial loss: turbulent
TURBULENT_PEAK_SIGMAS = 5.0  # ... and this many robust sigmas of minibatch noise above it
TURBULENT_GRAD_RATIO = 4.0  # a grad-norm point this many times its median: turbulent
DAMAGE_AFTERMATH_RATIO = 1.2  # a spike did damage if the loss stayed this many times higher after it ...
DAMAGE_PEAK_SIGMAS = 10.0  # ... or it stood this many robust sigmas above the start (beyond heavy tails)
CHANCE_ACCURACY_RATIO = 1.5  # end accuracy below this x 1/num_classes: at chance
CHANCE_LOSS_TOLERANCE = 0.02  # a loss within this fraction of ln(k) is at the level of a uniform guess
KNOWN_K_TOLERANCE = 0.1  # ... looser when num_classes is known (a constant guess of the class prior)
CHANCE_FLOOR_QUANTILE = 10.0  # percentile of the last half that must not go below chance (unknown k)
MAX_CLASSES = 1000  # largest class count considered when num_classes is unknown


def end_accuracy(run: Run) -> float | None:
    """Median of the last `END_FRACTION` (>= 3 points) of the accuracy curve; None under 3 points."""
    acc = signal_curve(run, "accuracy").finite_prefix().values
    if len(acc) < 3:
        return None
    return float(np.median(acc[-max(3, int(len(acc) * END_FRACTION)) :]))


def chance_level(run: Run, p: LossProfile) -> tuple[int, bool] | None:
    """(k, True when the run is at chance) from classification evidence, or None without any.

    Evidence: with num_classes known, an accuracy curve ending below ``CHANCE_ACCURACY_RATIO`` / k
    or the end loss within ``KNOWN_K_TOLERANCE`` of ln(num_classes); without
    num_classes, a loss that ends within ``CHANCE_LOSS_TOLERANCE`` of ln(k) for the nearest
    integer k >= 2 and whose last half never dips below it (its ``CHANCE_FLOOR_QUANTILE``-th
    percentile stays above ln(k) minus the tolerance): the loss of a model that predicts a
    constant. A regression loss (MSE) scatters below any such level, so it gives no evidence.
    """
    k = num_classes(run)
    if k:
        near_chance_loss = abs(p.end - math.log(k)) <= KNOWN_K_TOLERANCE * math.log(k)
        end_acc = end_accuracy(run)
        return k, near_chance_loss or (end_acc is not None and end_acc < CHANCE_ACCURACY_RATIO / k)
    if not 0 < p.end <= math.log(MAX_CLASSES + 0.5):
        return None
    k = round(math.exp(p.end))
    if not 2 <= k <= MAX_CLASSES:
        return None
    chance = math.log(k)
    half = p.values[len(p.values) // 2 :]
    floor = float(np.percentile(half, CHANCE_FLOOR_QUANTILE))
    if (
        abs(p.end - chance) <= CHANCE_LOSS_TOLERANCE * chance
        and floor >= (1 - CHANCE_LOSS_TOLERANCE) * chance
    ):
        return k, True
    return None


def is_loss_spike(p: LossProfile) -> bool:
    """A loss point far above the start both relatively and against the minibatch noise.

    Rules out "small, safe steps" (`slow_decrease`) and, with no progress, says the updates were
    large (stuck at chance); a blow-up the run "never recovered from" needs `is_damaging_spike`.
    """
    return p.peak_ratio >= TURBULENT_PEAK_RATIO and p.peak_sigmas >= TURBULENT_PEAK_SIGMAS


def is_damaging_spike(p: LossProfile) -> bool:
    """A loss spike (`is_loss_spike`) that a minibatch outlier cannot explain.

    Heavy-tailed minibatch noise (a regression loss on noisy targets) throws single points
    several robust sigmas above the level, and leaves no trace. A blow-up either damages the
    model, so the points after it stay up (``peak_after_ratio`` >= ``DAMAGE_AFTERMATH_RATIO``,
    and significantly so: ``peak_after_p`` < `stats.FALL_P_VALUE`),
    or is far beyond any noise tail (``peak_sigmas`` >= ``DAMAGE_PEAK_SIGMAS``).
    `loss_diverging` needs one of the two for its "blew up and never recovered".
    """
    stayed_up = p.peak_after_ratio >= DAMAGE_AFTERMATH_RATIO and p.peak_after_p < FALL_P_VALUE
    return is_loss_spike(p) and (stayed_up or p.peak_sigmas >= DAMAGE_PEAK_SIGMAS)


def detect_stuck_at_chance(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find a run stuck near its initial (chance-level) loss with turbulent updates.

    Statistics (`stats.loss_profile`): flat = ``progress`` < ``STUCK_PROGRESS`` or no
    significant fall (``fall_p``); turbulent = a grad-norm max/median >= ``TURBULENT_GRAD_RATIO``,
    a damaging loss spike (`is_damaging_spike`), or a loss spike (`is_loss_spike`) in a run at
    chance (`chance_level`); not still falling (rank trend of the high-LR part, p <
    `stats.FALL_P_VALUE`) unless at chance. Or: at chance, the first level >=
    ``TURBULENT_PEAK_RATIO`` x ln(k), and no longer falling (epoch-level logging). Evidence adds
    the end accuracy and chance level when an accuracy curve and k are known, and ln(k).

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one WARNING. Evidence: ``progress_ratio``, ``peak_ratio``,
        ``grad_spike_ratio``, ``chance_loss``, ``end_accuracy``, ``chance_accuracy`` (known ones).

    Example:
        Adam at LR 0.3 on a 10-class CNN: the loss jumps to 100, falls back to 2.30 = ln(10) and
        stays there; accuracy 0.1.
    """
    p = loss_profile(run)
    if p is None:
        return []
    grad_ratio = p.grad_spike_ratio if math.isfinite(p.grad_spike_ratio) else 0.0
    chance = chance_level(run, p)
    at_chance = chance is not None and chance[1]
    # Fell from far above the uniform-guess level (a loss spike's TURBULENT_PEAK_RATIO) to it:
    # the first updates made the model much worse than guessing, then it collapsed to a
    # constant (epoch means hide the blow-up itself, and leave no grad norm to show it).
    fell_to_chance = (
        at_chance and p.init >= TURBULENT_PEAK_RATIO * math.log(chance[0]) and p.late_fall_ratio == 0.0
    )
    flat = p.progress < STUCK_PROGRESS or not p.fell
    # Heavy-tailed minibatch noise throws single loss points far up; only a damaging spike, a
    # grad-norm spike, or a spike in a run known to sit at chance says the updates were large.
    loss_spike = is_damaging_spike(p) or (at_chance and is_loss_spike(p))
    turbulent = loss_spike or grad_ratio >= TURBULENT_GRAD_RATIO
    still_falling = p.active_trend < 0 and p.active_trend_p < FALL_P_VALUE
    # A loss still going down significantly is not stuck -- unless it is only falling back to the
    # chance level of a classifier.
    if not ((flat and turbulent and (at_chance or not still_falling)) or fell_to_chance):
        return []
    evidence = {"progress_ratio": p.progress, "peak_ratio": p.peak_ratio, "grad_spike_ratio": grad_ratio}
    facts = []
    if chance is not None:
        k = chance[0]
        evidence["chance_loss"] = math.log(k)
        facts.append(f"ln({k}) = {fmt(math.log(k))} is the loss of a uniform guess over {k} classes")
        end_acc = end_accuracy(run)
        if end_acc is not None:
            evidence["end_accuracy"] = end_acc
            evidence["chance_accuracy"] = 1.0 / k
            if end_acc < CHANCE_ACCURACY_RATIO / k:
                facts.append(f"accuracy ends at {fmt(end_acc)}, chance is {fmt(1.0 / k)}")
    turb = []
    if fell_to_chance and not turbulent:
        turb.append(
            f"the loss started at {fmt(p.init)}, far worse than a uniform guess, and fell to that level"
        )
    if loss_spike:
        turb.append(f"the loss jumped to {fmt(p.peak_ratio)}x its start at step {p.peak_step}")
    if grad_ratio >= TURBULENT_GRAD_RATIO:
        turb.append(f"the gradient norm spiked to {fmt(grad_ratio)}x its median")
    step = p.step_at_fraction(0.5)
    message = (
        f"The loss is stuck {'near its initial value' if flat else 'at the level of a constant guess'}: "
        f"{fmt(p.init)} -> {fmt(p.end)} "
        f"({fmt(p.progress * 100)}% progress)" + (f" ({'; '.join(facts)})" if facts else "") + ". "
        f"The updates were not small: {' and '.join(turb)}. An LR too high throws the model "
        "into a state where it predicts a constant (dead units, saturated outputs) and cannot learn."
    )
    return [
        Finding(
            "stuck_at_chance",
            Severity.WARNING,
            step,
            (int(p.steps[0]), int(p.steps[-1])),
            evidence,
            message,
            lower_lr(run),
        )
    ]
