"""Shared wording of LR fixes, so every detector proposes numbers the same way."""

from __future__ import annotations

from lrdoctor.analyzers.detectors.context import base_lr
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import fmt


def lower_lr(run: Run, lr: float | None = None) -> str:
    """ "lower the LR from X to X/10-X/3" (X: ``lr`` or the run's base LR)."""
    lr = lr if lr is not None else base_lr(run)
    if lr is None:
        return "lower the learning rate 3-10x"
    return f"lower the LR from {fmt(lr)} to {fmt(lr / 10)}-{fmt(lr / 3)}"


def raise_lr(run: Run) -> str:
    """ "raise the LR from X to 3X-10X"."""
    lr = base_lr(run)
    if lr is None:
        return "raise the learning rate 3-10x (or train much longer)"
    return f"raise the LR from {fmt(lr)} to {fmt(lr * 3)}-{fmt(lr * 10)} (or train much longer)"
