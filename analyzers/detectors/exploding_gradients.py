"""``exploding_gradients``: gradient-norm spikes far above the recent median, or sustained growth.

The classic RNN sign (gradients multiplied through time). The fix proposes
``clip_grad_norm_`` with a ``max_norm`` taken from the run itself: a high percentile of the
gradient norm over the steps that were not spikes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lrdoctor.analyzers.detectors.context import DetectorContext, grad_clip
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import fmt, signal_curve, trailing_median

WINDOW_POINTS = 20  # trailing window (points) of the rolling median a spike is compared with
SPIKE_RATIO = 10.0  # grad norm over its trailing median: a spike at or above this
OVER_RECENT_MAX_RATIO = 2.0  # a spike is also this many times the largest of the window before it
WARNING_SPIKES = 3  # this many spikes (or sustained growth) make a WARNING; fewer an INFO
GROWTH_RATIO = 100.0  # median of the last 10% over the median of the first 10% (after warm-up)
CLIP_PERCENTILE = 95.0  # percentile of non-spike grad norms proposed as max_norm
MIN_POINTS = 10  # a blow-up can take only a few dozen steps before NaN


def spike_mask(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_spike, ratio to trailing median) for each point of a finite grad-norm curve.

    A spike must also exceed the run's overall median grad norm (once a run has converged its
    norm is tiny, and a jump from tiny to still-small is a hard minibatch, not an explosion) and
    be ``OVER_RECENT_MAX_RATIO`` x the largest of the ``WINDOW_POINTS`` points before it
    (heavy-tailed minibatch norms jump often; an explosion is unlike anything recent).
    """
    med = trailing_median(values, WINDOW_POINTS)
    recent_max = np.full(len(values), np.inf)
    if len(values) > WINDOW_POINTS:
        run_max = ndimage.maximum_filter1d(values, WINDOW_POINTS, origin=(WINDOW_POINTS - 1) // 2)
        recent_max[WINDOW_POINTS:] = run_max[WINDOW_POINTS - 1 : -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(med > 0, values / med, np.nan)
    spikes = (
        (np.nan_to_num(ratio, nan=0.0) >= SPIKE_RATIO)
        & (values > np.median(values))
        & (values >= OVER_RECENT_MAX_RATIO * recent_max)
    )
    return spikes, ratio


def detect_exploding_gradients(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find gradient-norm spikes or sustained growth.

    Statistics: each point over the median of the ``WINDOW_POINTS`` points before it; a spike is a
    ratio >= ``SPIKE_RATIO``. Growth: median of the last 10% over the median of the first 10%
    >= ``GROWTH_RATIO``. WARNING with >= ``WARNING_SPIKES`` spikes or growth, else INFO.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one finding. Evidence: ``spike_count``, ``max_spike_ratio``, ``growth_ratio``,
        ``suggested_max_norm``.

    Example:
        An LSTM's grad norm ~1 with jumps to 40 at steps 120 and 300 and 500: WARNING at step 120,
        fix "clip gradients at max_norm=1.8".
    """
    curve = signal_curve(run, "grad_norm").finite_prefix()
    g = curve.values
    n = len(g)
    if n < MIN_POINTS:
        return []
    spikes, ratio = spike_mask(g)
    k = max(3, n // 10)
    first, last = float(np.median(g[:k])), float(np.median(g[-k:]))
    growth = last / first if first > 0 else 0.0
    count = int(spikes.sum())
    if count == 0 and growth < GROWTH_RATIO:
        return []
    calm = g[~spikes]
    max_norm = float(np.percentile(calm, CLIP_PERCENTILE)) if len(calm) else float(np.median(g))
    idx = np.flatnonzero(spikes)
    step = int(curve.steps[idx[0]]) if count else int(curve.steps[-k])
    severity = Severity.WARNING if count >= WARNING_SPIKES or growth >= GROWTH_RATIO else Severity.INFO
    max_ratio = float(np.nanmax(ratio[idx])) if count else 0.0
    evidence = {
        "spike_count": float(count),
        "max_spike_ratio": max_ratio,
        "growth_ratio": growth,
        "suggested_max_norm": max_norm,
    }
    parts = []
    if count:
        parts.append(
            f"{count} gradient-norm spike(s) of {fmt(SPIKE_RATIO)}x or more over the recent median "
            f"(largest {fmt(max_ratio)}x, first at step {step})"
        )
    if growth >= GROWTH_RATIO:
        parts.append(f"the gradient norm grew {fmt(growth)}x from the start to the end")
    clip = grad_clip(run)
    clip_note = f" The run clips at max_norm={fmt(clip)}; the logged norm is before clipping." if clip else ""
    if severity is Severity.INFO:
        # A few isolated spikes: worth knowing (and a clip threshold is cheap), not an alarm.
        message = (
            "Isolated gradient spike(s): " + "; ".join(parts) + ". Too few to call the gradients "
            "exploding; if they recur or precede a loss jump, clipping bounds the update they cause."
            + clip_note
        )
    else:
        message = (
            "Exploding gradients: " + "; ".join(parts) + ". Large, sudden gradients make single updates "
            "huge; recurrent models are prone to it because gradients are multiplied through time."
            + clip_note
        )
    if clip:
        fix = f"lower the LR, or clip harder than max_norm={fmt(clip)} (e.g. max_norm={fmt(max_norm)})"
    else:
        fix = f"clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={fmt(max_norm)})"
    return [
        Finding(
            "exploding_gradients",
            severity,
            step,
            (step, int(curve.steps[-1])),
            evidence,
            message,
            fix,
            signal="grad_norm",
        )
    ]
