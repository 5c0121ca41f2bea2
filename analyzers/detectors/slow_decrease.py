"""``slow_decrease``: the loss is going down, but slowly and smoothly -- the LR is too low.

Two shapes: the loss barely moved at all while the run was calm (no loss or gradient-norm
spikes: the model simply did not move much), or it made moderate progress and is still falling
steadily at the end (far from a plateau). "Still falling" is judged against the run's own pace
and noise, not against an assumed floor of 0: a run that converged to a non-zero floor (a
regression on noisy targets) or that is still improving slowly after a fast start ends falling
much slower than its average pace; a run whose LR is too low keeps its pace (a steady decline).
With a decaying schedule the pace is read where the LR was still high.
"""

from __future__ import annotations

import math

from lrdoctor.analyzers.detectors._fixes import raise_lr
from lrdoctor.analyzers.detectors.context import DetectorContext
from lrdoctor.analyzers.detectors.stuck_at_chance import (
    TURBULENT_GRAD_RATIO,
    is_damaging_spike,
    is_loss_spike,
)
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import FALL_P_VALUE, fmt, loss_profile

BARELY_MOVED_PROGRESS = 0.1  # progress below this in a calm run: the model barely moved
SLOW_PROGRESS = 0.5  # progress below this while still falling: slow
STILL_FALLING_TREND = -0.6  # rank trend of the last half's block medians at or below this: falling
# Late fall rate over the average rate at or above this: not slowing down. An exponential
# approach to any floor ends at 0.4 when the run stopped after about 2 time constants (12% of
# the gap to the floor still left); a linear decline ends at 1.
KEEPS_PACE_RATIO = 0.4


def detect_slow_decrease(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find a loss that decreases too slowly.

    Statistics (`stats.loss_profile`): ``progress`` = (init - end) / init; ``fall_p`` (rank test
    of the fall from start to end); ``active_trend`` (and p-value) = Spearman trend of 10 block
    medians over the last half of the high-LR part of the run (the whole run without a decaying
    schedule); ``late_fall_ratio`` = fall rate at the end of that part over the average fall
    rate (`stats.late_fall_rate`); calm = no damaging loss spike and grad-norm max/median <
    ``TURBULENT_GRAD_RATIO`` (as in `stuck_at_chance`).
    Fires (WARNING) on a calm run that barely moved (progress < ``BARELY_MOVED_PROGRESS`` or
    no significant fall), or with progress < ``SLOW_PROGRESS``, no loss spike, active_trend <=
    ``STILL_FALLING_TREND`` and significant, and late_fall_ratio >= ``KEEPS_PACE_RATIO`` (still
    falling at its own pace while the LR was high: far from a plateau). Never on a loss rising
    significantly.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one WARNING. Evidence: ``progress_ratio``, ``late_trend_rank``, ``peak_ratio``,
        ``late_fall_ratio``, ``fall_p_value``.

    Example:
        SGD at LR 0.001 on a CNN: 2.303 -> 2.29 over 300 steps, no spikes.
    """
    p = loss_profile(run)
    if p is None or p.progress >= SLOW_PROGRESS:
        return []
    grad_ratio = p.grad_spike_ratio if math.isfinite(p.grad_spike_ratio) else 0.0
    # Calm: no damaging loss spike (heavy-tailed minibatch noise throws harmless single points
    # far up) and no gradient-norm spike.
    calm = not is_damaging_spike(p) and grad_ratio < TURBULENT_GRAD_RATIO
    barely_moved = calm and (p.progress < BARELY_MOVED_PROGRESS or not p.fell)
    rising = p.active_trend > 0 and p.active_trend_p < FALL_P_VALUE
    still_falling = (
        not is_loss_spike(p)
        and p.active_trend <= STILL_FALLING_TREND
        and p.active_trend_p < FALL_P_VALUE
        and p.late_fall_ratio >= KEEPS_PACE_RATIO
    )
    if rising or not (barely_moved or still_falling):
        return []
    evidence = {
        "progress_ratio": p.progress,
        "late_trend_rank": p.late_trend,
        "peak_ratio": p.peak_ratio,
        "late_fall_ratio": p.late_fall_ratio,
        "fall_p_value": p.fall_p,
    }
    if barely_moved:
        what = (
            f"The loss barely moved: {fmt(p.init)} -> {fmt(p.end)} ({fmt(p.progress * 100)}% lower"
            + ("" if p.fell else ", within the minibatch noise")
            + f") over {int(p.steps[-1] - p.steps[0])} steps, with no spikes in the loss or gradient norm."
        )
    else:
        what = (
            f"The loss fell only {fmt(p.progress * 100)}% ({fmt(p.init)} -> {fmt(p.end)}) and is still "
            f"falling steadily (rank trend {fmt(p.active_trend)} over the last half of the high-LR "
            f"part, at {fmt(p.late_fall_ratio)}x its average pace): far from a plateau."
        )
    message = what + " Small, safe steps: the LR is too low, the run underfits and wastes compute."
    step = p.step_at_fraction(0.5)
    return [
        Finding(
            "slow_decrease",
            Severity.WARNING,
            step,
            (int(p.steps[0]), int(p.steps[-1])),
            evidence,
            message,
            raise_lr(run),
        )
    ]
