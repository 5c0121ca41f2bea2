"""``nan_loss``: the loss or the gradient norm became NaN or infinite.

The step is exact: the first step at which a non-finite training loss was logged (raw points,
repeated steps included); for a run whose loss stayed finite, the first non-finite gradient
norm. The message says what led up to it: whether the loss and the gradient norm were rising
over the steps just before, and whether the LR had just been raised (a warmup or a schedule
reaching a value the model cannot take).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.analyzers.detectors._fixes import lower_lr
from lrdoctor.analyzers.detectors.context import DetectorContext, lr_at
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run, Series
from lrdoctor.analyzers.stats import first_nonfinite, fmt

LEADUP_STEPS = 20  # steps before the first non-finite value examined for what led up to it
RISING_RATIO = 1.5  # loss/grad norm at the end of the lead-up over its median: "rising" above this
LR_RAISED_RATIO = 1.2  # LR at the break over the LR at the start of the lead-up: "LR was raised"


def _first_bad(series: Series | None) -> tuple[int, int] | None:
    """(index, step) of the first non-finite point of ``series``, or None."""
    if series is None:
        return None
    i = first_nonfinite(series.values)
    return None if i is None else (i, int(series.steps[i]))


def _rise_ratio(series: Series | None, step: int) -> float | None:
    """Last finite value before ``step`` over the median of the lead-up window (None if unknown)."""
    if series is None:
        return None
    k = int(np.searchsorted(series.steps, step, side="left"))
    window = np.asarray(series.values[max(0, k - LEADUP_STEPS) : k])
    window = window[np.isfinite(window)]
    if len(window) < 3:
        return None
    med = float(np.median(np.abs(window)))
    return float(abs(window[-1]) / med) if med > 0 else None


def detect_nan_loss(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Find the first NaN/inf in the training loss or the gradient norm.

    Statistic: the first non-finite point of ``loss``; if the loss stays finite, the first
    non-finite point of ``grad_norm`` (an earlier grad-norm overflow is named in the message).
    Lead-up (the ``LEADUP_STEPS`` steps before): last value over the window median for the loss
    and the grad norm (``> RISING_RATIO``: rising), LR at the break over the LR at the window start
    (``> LR_RAISED_RATIO``: the LR had just been raised).

    Args:
        run: the run to examine.
        context: unused (the rule needs only the run).

    Returns:
        One ERROR finding or none. Evidence: ``nan_step``, ``grad_norm_nan_step``, ``loss_rise_ratio``,
        ``grad_norm_rise_ratio``, ``lr_at_nan``, ``lr_raised_ratio`` (those known).

    Example:
        A loss logged as 2.3, 1.9, 5.0, 40.0, nan at steps 0-4 gives a finding at step 4.
    """
    loss, grad = run.signal("loss"), run.signal("grad_norm")
    loss_bad, grad_bad = _first_bad(loss), _first_bad(grad)
    if loss_bad is None and grad_bad is None:
        return []
    # The loss decides the step when it went non-finite (what users see); else the grad norm.
    step, signal = (loss_bad[1], "loss") if loss_bad else (grad_bad[1], "grad_norm")
    last_step = max(int(s.steps[-1]) for s in (loss, grad) if s is not None and len(s))
    evidence: dict[str, float] = {"nan_step": float(step)}
    leadup = []
    if signal == "loss" and grad_bad is not None and grad_bad[1] < step:
        evidence["grad_norm_nan_step"] = float(grad_bad[1])
        leadup.append(f"the gradient norm was already non-finite at step {grad_bad[1]}")
    loss_rise = _rise_ratio(loss, step)
    grad_rise = _rise_ratio(grad, step)
    if loss_rise is not None:
        evidence["loss_rise_ratio"] = loss_rise
        if loss_rise > RISING_RATIO:
            leadup.append(f"the loss rose to {fmt(loss_rise)}x its recent median just before")
    if grad_rise is not None:
        evidence["grad_norm_rise_ratio"] = grad_rise
        if grad_rise > RISING_RATIO:
            leadup.append(f"the gradient norm rose to {fmt(grad_rise)}x its recent median")
    lr_now = lr_at(run, step)
    lr_before = lr_at(run, step - LEADUP_STEPS)
    if lr_now is not None:
        evidence["lr_at_nan"] = lr_now
    if lr_now is not None and lr_before:
        evidence["lr_raised_ratio"] = lr_now / lr_before
        if lr_now / lr_before > LR_RAISED_RATIO:
            leadup.append(f"the LR had just been raised from {fmt(lr_before)} to {fmt(lr_now)}")
    what = "loss" if signal == "loss" else "gradient norm"
    why = ("; ".join(leadup) + ". ") if leadup else ""
    message = (
        f"The {what} became non-finite (NaN/inf) at step {step}. {why[:1].upper() + why[1:]}"
        "A learning rate too high is the usual cause: each update overshoots until values overflow. "
        "Other causes give the same sign: bad inputs (NaN/inf in the data or labels), a log or "
        "division of zero in the loss, or fp16/AMP overflow without loss scaling."
    )
    fix = lower_lr(run, lr_now)
    if evidence.get("lr_raised_ratio", 1.0) > LR_RAISED_RATIO:
        fix += f" (or cap the warmup/schedule below {fmt(lr_now)})"
    fix += "; clip gradients (clip_grad_norm_) and check inputs/labels for NaN if it persists"
    return [
        Finding(
            "nan_loss",
            Severity.ERROR,
            step,
            (step, max(step, last_step)),
            evidence,
            message,
            fix,
            signal=signal,
        )
    ]
