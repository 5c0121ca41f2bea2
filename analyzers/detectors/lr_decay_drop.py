"""``lr_decay_drop``: the loss dropped sharply right after a step decay of the LR.

Not a fault (INFO): a step schedule doing its job. But a large drop right after the decay says
the LR before it was too high for that phase of training -- the loss was bouncing above the
bottom of its valley, and a smaller step let it settle. Decaying earlier, or starting lower,
would have reached that loss sooner. Smooth schedules (cosine, linear, warmup) never trigger it:
only an LR that falls ``DECAY_RATIO``-fold within ``DECAY_WITHIN_STEPS`` steps counts as a decay.
"""

from __future__ import annotations

import numpy as np

from lrdoctor.analyzers.detectors.context import DetectorContext
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import MIN_POINTS, fmt, signal_curve

DECAY_RATIO = 2.0  # LR before over LR after: a step decay at or above this
DECAY_WITHIN_STEPS = 3  # ... happening within this many steps
WINDOW_FRACTION = 0.05  # loss windows before/after the decay: this fraction of the loss points
MIN_WINDOW_POINTS = 5
DROP_FRACTION = 0.2  # median loss after over before at or below 1 - this: a sharp drop


def detect_lr_decay_drop(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find step decays of the LR followed at once by a sharp loss drop.

    Statistics: for each step decay (LR falling >= ``DECAY_RATIO``-fold within
    ``DECAY_WITHIN_STEPS`` steps), the median loss over a window just after over the median
    just before; a ratio <= 1 - ``DROP_FRACTION`` is reported. The largest drop wins.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one INFO. Evidence: ``decay_step``, ``lr_before``, ``lr_after``,
        ``loss_after_over_before_ratio``.

    Example:
        StepLR(0.1 -> 0.01) at step 180 and the loss falls from 0.5 to 0.2 within 15 steps.
    """
    lr = signal_curve(run, "lr").finite_prefix()
    loss = signal_curve(run, "loss").finite_prefix()
    if len(lr) < 2 or len(loss) < MIN_POINTS:
        return []
    # Compare each LR with the one DECAY_WITHIN_STEPS points later (a fixed lag: linear).
    lag = min(DECAY_WITHIN_STEPS, len(lr) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = lr.values[:-lag] / lr.values[lag:]
    starts = np.flatnonzero(ratio >= DECAY_RATIO)
    if len(starts) == 0:
        return []
    # One decay per run of consecutive hits: keep the first index of each group.
    starts = starts[np.r_[True, np.diff(starts) > lag]]
    w = max(MIN_WINDOW_POINTS, int(len(loss) * WINDOW_FRACTION))
    best = None
    for i in starts:
        at = int(lr.steps[i + lag])
        k = int(np.searchsorted(loss.steps, at))
        if k < w or k + w > len(loss):
            continue
        before, after = float(np.median(loss.values[k - w : k])), float(np.median(loss.values[k : k + w]))
        if before > 0 and after / before <= 1 - DROP_FRACTION and (best is None or after / before < best[0]):
            best = (after / before, at, float(lr.values[i]), float(lr.values[i + lag]), before, after)
    if best is None:
        return []
    r, at, lr0, lr1, before, after = best
    message = (
        f"The loss fell {fmt((1 - r) * 100)}% ({fmt(before)} -> {fmt(after)}) right after the LR decayed "
        f"from {fmt(lr0)} to {fmt(lr1)} at step {at}. The schedule works, and the drop says the earlier LR "
        "was too high for this phase: the loss was bouncing above the bottom of its valley."
    )
    fix = f"decay earlier, or run this phase at an LR nearer {fmt(lr1)} (e.g. {fmt((lr0 * lr1) ** 0.5)})"
    last = int(loss.steps[min(len(loss) - 1, int(np.searchsorted(loss.steps, at)) + w)])
    return [
        Finding(
            "lr_decay_drop",
            Severity.INFO,
            at,
            (at, last),
            {"decay_step": float(at), "lr_before": lr0, "lr_after": lr1, "loss_after_over_before_ratio": r},
            message,
            fix,
            signal="loss",
        )
    ]
