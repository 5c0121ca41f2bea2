"""``loss_diverging``: the loss blew up -- it ends above where it started, climbed back up from
its minimum, or jumped far above its initial value and never recovered most of the way.

When the LR curve rose just before the blow-up (a warmup, a one-cycle ramp, a restart), the
finding names the LR at which training broke.
"""

from __future__ import annotations

import numpy as np

from lrdoctor.analyzers.detectors._fixes import lower_lr
from lrdoctor.analyzers.detectors.context import DetectorContext, lr_at
from lrdoctor.analyzers.detectors.stuck_at_chance import is_damaging_spike
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import FALL_P_VALUE, fmt, loss_profile, rolling_median

ABOVE_INIT_PROGRESS = -0.2  # progress below this (end 20% above the initial loss): diverged
ABOVE_INIT_SE = 3.0  # ... and more than this many standard errors of the initial level above it
REBOUND_FRACTION = 0.5  # end - min over init - min above this: climbed back half the way up
REBOUND_MIN_GAIN = 0.2  # ... counted only when the minimum was this fraction below init
REBOUND_TREND = 0.0  # ... and only while the last half is not falling (rank trend >= this)
SPIKE_PEAK_RATIO = 2.0  # a single loss point this many times the initial loss: blew up
SPIKE_MAX_PROGRESS = 0.5  # ... that matters only if the run then recovered less than this
LR_ROSE_RATIO = 1.2  # LR at the blow-up over LR LR_LOOKBACK_STEPS earlier: "just after LR rose"
LR_LOOKBACK_STEPS = 20
SMOOTH_POINTS = 5  # rolling-median window (points) to find when the climb started


def _onset(values: np.ndarray) -> int:
    """Where the climb started: the lowest point of the smoothed loss before its last maximum."""
    sm = rolling_median(values, SMOOTH_POINTS)
    top = len(sm) - 1 - int(np.argmax(sm[::-1]))
    return int(np.argmin(sm[: top + 1]))


def detect_loss_diverging(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find a loss that diverged (finite values only; NaN is `nan_loss`).

    Statistics (from `stats.loss_profile`): ``progress`` = (init - end) / init; the rebound
    (end - min) / (init - min); ``peak_ratio`` = highest early point / init. Fires when
    progress < ``ABOVE_INIT_PROGRESS`` and end - init > ``ABOVE_INIT_SE`` x ``init_se`` (ERROR),
    the rebound exceeds ``REBOUND_FRACTION`` after a
    gain of ``REBOUND_MIN_GAIN`` with a late rank trend >= ``REBOUND_TREND``, beyond the noise
    (``rebound_p`` or the late trend's p-value below `stats.FALL_P_VALUE`) (ERROR), or a
    spike above ``SPIKE_PEAK_RATIO`` x init (beyond the noise and leaving the loss higher after
    it: `stuck_at_chance.is_damaging_spike`) was followed by progress below ``SPIKE_MAX_PROGRESS``
    (WARNING).

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one finding. Evidence: ``progress_ratio``, ``rebound_ratio``, ``peak_ratio``,
        ``lr_at_onset`` (when an LR curve exists).

    Example:
        A loss 2.3 -> 0.8 -> 5.0 ends far above its minimum: ERROR, step where it left 0.8.
    """
    p = loss_profile(run)
    if p is None:
        return []
    gain = p.init - p.min_level
    rebound = (p.end - p.min_level) / gain if gain > 0 else 0.0
    evidence = {"progress_ratio": p.progress, "rebound_ratio": rebound, "peak_ratio": p.peak_ratio}
    # "Above the start" must be beyond the noise of where the start was measured.
    if p.progress < ABOVE_INIT_PROGRESS and p.end - p.init > ABOVE_INIT_SE * p.init_se:
        i = _onset(p.values)
        severity, what = (
            Severity.ERROR,
            (
                f"The loss diverged: it ends at {fmt(p.end)}, {fmt(p.end / p.init)}x its initial "
                f"{fmt(p.init)}, rising from step {int(p.steps[i])}."
            ),
        )
    elif (
        rebound > REBOUND_FRACTION
        and gain > REBOUND_MIN_GAIN * abs(p.init)
        and p.late_trend >= REBOUND_TREND
        # Beyond the noise: the end stands above the lowest stretch, or the last half rises.
        and min(p.rebound_p, p.late_trend_p if p.late_trend > 0 else 1.0) < FALL_P_VALUE
    ):
        i = _onset(p.values)
        severity, what = (
            Severity.ERROR,
            (
                f"The loss went down to {fmt(p.min_level)} and climbed back to {fmt(p.end)} "
                f"({fmt(rebound * 100)}% of the way back to its initial {fmt(p.init)}), from step "
                f"{int(p.steps[i])}."
            ),
        )
    elif p.peak_ratio >= SPIKE_PEAK_RATIO and p.progress < SPIKE_MAX_PROGRESS and is_damaging_spike(p):
        i = int(np.searchsorted(p.steps, p.peak_step))
        severity, what = (
            Severity.WARNING,
            (
                f"The loss blew up to {fmt(p.peak_ratio)}x its initial value ({fmt(p.init)}) at step "
                f"{p.peak_step} and never recovered: it ends at {fmt(p.end)}, only "
                f"{fmt(max(p.progress, 0) * 100)}% below where it started."
            ),
        )
    else:
        return []
    step = int(p.steps[i])
    lr_now, lr_before = lr_at(run, step + SMOOTH_POINTS), lr_at(run, step - LR_LOOKBACK_STEPS)
    broke = ""
    if lr_now is not None:
        evidence["lr_at_onset"] = lr_now
        if lr_before and lr_now / lr_before > LR_ROSE_RATIO:
            broke = (
                f" It happened right after the LR rose from {fmt(lr_before)} to {fmt(lr_now)}: "
                f"training broke at LR {fmt(lr_now)}."
            )
    message = (
        what
        + broke
        + " Updates too large for the loss surface overshoot and make it worse: the LR is too high."
    )
    fix = lower_lr(run, lr_now if broke else None)
    if broke:
        fix += f" (keep the schedule's peak below {fmt(lr_now)})"
    return [Finding("loss_diverging", severity, step, (step, int(p.steps[-1])), evidence, message, fix)]
