"""``vanishing_gradients``: the gradient norm collapsed towards zero while the loss stayed flat.

Gradient norms shrinking is normal when the loss falls (a converging run); it is a symptom only
when the loss did not improve: the network stopped receiving a learning signal (saturated or
dead units, often after an LR too high; or depth without normalization).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.analyzers.detectors.context import DetectorContext
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import fmt, loss_profile, signal_curve

COLLAPSE_RATIO = 1e-3  # end median over start median of the grad norm at or below this: collapsed
FLAT_PROGRESS = 0.1  # loss progress below this: flat
MIN_POINTS = 30


def detect_vanishing_gradients(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find a gradient norm that collapsed while the loss stayed flat.

    Statistics: median of the last 10% of the grad norm over the median of the first 10%
    (<= ``COLLAPSE_RATIO``) with loss progress < ``FLAT_PROGRESS``.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one WARNING. Evidence: ``collapse_ratio``, ``progress_ratio``.

    Example:
        Grad norm 2.0 -> 1e-5 while the loss stays at 2.30: WARNING.
    """
    curve = signal_curve(run, "grad_norm").finite_prefix()
    g = curve.values
    p = loss_profile(run)
    if len(g) < MIN_POINTS or p is None or p.progress >= FLAT_PROGRESS:
        return []
    k = max(3, len(g) // 10)
    first, last = float(np.median(g[:k])), float(np.median(g[-k:]))
    if first <= 0 or last / first > COLLAPSE_RATIO:
        return []
    below = np.flatnonzero(g <= first * COLLAPSE_RATIO * 10)
    step = int(curve.steps[below[0]]) if len(below) else int(curve.steps[-k])
    ratio = last / first
    message = (
        f"The gradient norm collapsed from {fmt(first)} to {fmt(last)} ({fmt(ratio)}x) while the loss "
        f"stayed flat ({fmt(p.init)} -> {fmt(p.end)}): the network no longer gets a learning signal "
        "(saturated or dead units, often after an LR too high)."
    )
    fix = (
        "lower the LR and restart from a fresh initialization; add normalization (BatchNorm/LayerNorm) "
        "or use ReLU-family activations and a proper init"
    )
    return [
        Finding(
            "vanishing_gradients",
            Severity.WARNING,
            step,
            (step, int(curve.steps[-1])),
            {"collapse_ratio": ratio, "progress_ratio": p.progress},
            message,
            fix,
            signal="grad_norm",
        )
    ]
