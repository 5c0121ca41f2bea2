"""``loss_oscillating``: the loss swings up and down by as much as it has improved and makes
no net progress -- harmful oscillation, not minibatch noise.

Two scale-free views, either fires:

- *wandering*: over 20 block medians (each the median of 5% of the points, which removes
  minibatch noise), the rises add up to at least ``WANDER_RATIO`` x the fall from the initial
  loss to the lowest block, and the run ends no lower than the best block of its first 20%:
  the loss keeps climbing back and the rest of the run gained nothing;
- *bouncing*: the spread of the last half around its local mean (1.4826 x MAD of the residual
  from 20 block means) is at least ``NOISE_OVER_GAIN_RATIO`` x the decrease achieved, with no
  downward trend left.

Minibatch noise averages out within blocks and is a small fraction of what a healthy run gains.
Heavy-tailed noise around a loss that never moved is no oscillation either: the swings must come
after a significant fall, grow significantly beyond the first half's, or include a significant
climb (rank tests in `stats`: ``fall_p``, ``noise_grew_p``, ``climb_p``).
"""

from __future__ import annotations

from lrdoctor.analyzers.detectors._fixes import lower_lr
from lrdoctor.analyzers.detectors.context import DetectorContext
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import FALL_P_VALUE, fmt, loss_profile

NOISE_OVER_GAIN_RATIO = 0.5  # late residual spread over the achieved decrease: oscillating above this
FLAT_TREND = -0.3  # late rank trend above this: no longer improving
WANDER_RATIO = 0.5  # block-median rises over the total fall: wandering at or above this
MIN_PROGRESS = 0.1  # below this the run is stuck (`stuck_at_chance` / `slow_decrease` judge it)


def detect_loss_oscillating(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find harmful oscillation of the loss in the second half of the run.

    Statistics (`stats.loss_profile`): wandering (``wander_ratio`` >= ``WANDER_RATIO`` and
    end >= ``early_best``) or bouncing (``late_noise_ratio`` >= ``NOISE_OVER_GAIN_RATIO`` and
    ``late_trend`` > ``FLAT_TREND``), with progress >= ``MIN_PROGRESS`` and one of ``fall_p``,
    ``noise_grew_p``, ``climb_p`` below `stats.FALL_P_VALUE`.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one WARNING. Evidence: ``wander_ratio``, ``noise_over_gain_ratio``,
        ``late_trend_rank``, ``progress_ratio``, ``early_best_loss``.

    Example:
        A loss falling 2.3 -> 1.2 then bouncing between 0.6 and 1.8: ratio ~ 0.6, trend ~ 0.
    """
    p = loss_profile(run)
    # Steady noise around a flat loss is no oscillation: heavy-tailed minibatch noise makes any
    # "decrease" a fluke to swing around (`stuck_at_chance` / `slow_decrease` judge a flat run).
    # Harmful swings come after a real fall, grow beyond the early noise, or climb for real.
    if p is None or p.progress < MIN_PROGRESS or min(p.fall_p, p.noise_grew_p, p.climb_p) >= FALL_P_VALUE:
        return []
    wandering = p.wander_ratio >= WANDER_RATIO and p.end >= p.early_best
    bouncing = p.late_noise_ratio >= NOISE_OVER_GAIN_RATIO and p.late_trend > FLAT_TREND
    if not (wandering or bouncing):
        return []
    step = p.step_at_fraction(0.2 if wandering else 0.5)
    evidence = {
        "wander_ratio": p.wander_ratio,
        "noise_over_gain_ratio": p.late_noise_ratio,
        "late_trend_rank": p.late_trend,
        "progress_ratio": p.progress,
        "early_best_loss": p.early_best,
    }
    if wandering:
        what = (
            f"The loss oscillates: after reaching {fmt(p.early_best)} in the first 20% of the run it keeps "
            f"climbing back (its rises add up to {fmt(p.wander_ratio)}x its total fall) and ends at "
            f"{fmt(p.end)}, no lower: the rest of the run gained nothing."
        )
    else:
        what = (
            f"The loss oscillates: over the second half it swings by {fmt(p.late_noise_ratio)}x the decrease "
            f"it achieved ({fmt(p.init)} -> {fmt(p.end)}) and no longer trends down (rank trend "
            f"{fmt(p.late_trend)})."
        )
    message = what + (
        " Minibatch noise averages out and is a small fraction of what a healthy run gains; "
        "swings this large mean the updates overshoot: the LR is too high."
    )
    return [
        Finding(
            "loss_oscillating",
            Severity.WARNING,
            step,
            (step, int(p.steps[-1])),
            evidence,
            message,
            lower_lr(run),
        )
    ]
