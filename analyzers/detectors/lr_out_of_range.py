"""``lr_out_of_range``: the LR lies outside the typical range for the optimizer and model.

Context only (INFO): the curves decide the verdict. Typical ranges (lrdoctor's tuning notes):

======================== ============== =====================================
optimizer / model        typical LR     note
======================== ============== =====================================
SGD, CNN, no BatchNorm   0.01
SGD, CNN, BatchNorm      0.05 - 0.1     0.1 for large batches (>= 128)
Adam, CNN                3e-4 - 1e-3    deep CNNs 3e-4; up to 2e-3 with BatchNorm
SGD, RNN                 0.01 - 0.05    with or without momentum
Adam, RNN                5e-4 - 1e-3
======================== ============== =====================================

A run is flagged when its base LR (peak of the LR curve, else the ``lr`` hyperparameter) is more
than ``TOLERANCE_FACTOR`` outside the range. An LR range test sweeps the LR on purpose and gets
no note.
"""

from __future__ import annotations

from lrdoctor.analyzers.detectors.context import (
    DetectorContext,
    base_lr,
    batch_size,
    loss_span,
    model_kind,
    optimizer_name,
)
from lrdoctor.analyzers.detectors.lr_range_test import is_range_test
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import fmt

TOLERANCE_FACTOR = 3.0  # how far (x) outside the typical range before it is worth a note
LARGE_BATCH = 128  # samples per step from which the large-batch SGD row applies


def typical_range(
    optimizer: str, kind: str, batchnorm: bool, batch_size: int | None
) -> tuple[float, float] | None:
    """The typical (low, high) LR for an optimizer family and model kind, or None if not tabled."""
    if kind == "cnn":
        if optimizer == "SGD":
            if batchnorm:
                return (0.1, 0.1) if batch_size and batch_size >= LARGE_BATCH else (0.05, 0.1)
            return (0.01, 0.01)
        if optimizer == "Adam":
            return (3e-4, 2e-3) if batchnorm else (3e-4, 1e-3)
    if kind == "rnn":
        if optimizer == "SGD":
            return (0.01, 0.05)
        if optimizer == "Adam":
            return (5e-4, 1e-3)
    return None


def detect_lr_out_of_range(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Note an LR far outside the typical range for the run's optimizer and architecture.

    Args:
        run: the run to examine (needs ``optimizer``, ``model_kind`` and an LR; not a range test).
        context: unused.

    Returns:
        At most one INFO. Evidence: ``lr``, ``typical_low_lr``, ``typical_high_lr``, ``off_by_ratio``.

    Example:
        SGD at LR 1.0 on an RNN (typical 0.01-0.05): "20x above".
    """
    if is_range_test(run):
        return []
    opt, kind, lr = optimizer_name(run), model_kind(run), base_lr(run)
    if opt is None or kind is None or lr is None:
        return []
    rng = typical_range(opt, kind, bool(run.hparams.get("batchnorm")), batch_size(run))
    if rng is None:
        return []
    low, high = rng
    if lr > high * TOLERANCE_FACTOR:
        off, where = lr / high, "above"
    elif lr < low / TOLERANCE_FACTOR:
        off, where = low / lr, "below"
    else:
        return []
    typical = fmt(low) if low == high else f"{fmt(low)}-{fmt(high)}"
    bn = " with BatchNorm" if kind == "cnn" and run.hparams.get("batchnorm") else ""
    message = (
        f"The LR {fmt(lr)} is {fmt(off)}x {where} the typical {typical} for {opt} on a {kind.upper()}{bn}. "
        "This is context only; the curves decide whether it actually hurts."
    )
    fix = f"if the curves show trouble, try an LR near {typical}"
    step = loss_span(run)[0]
    return [
        Finding(
            "lr_out_of_range",
            Severity.INFO,
            step,
            (step, step),
            {"lr": lr, "typical_low_lr": low, "typical_high_lr": high, "off_by_ratio": off},
            message,
            fix,
            signal="lr",
        )
    ]
