"""LR range test: train briefly with an exponentially growing LR and pick an LR from the curve.

Notes:
    1. The LR of every param group goes from ``start_lr`` to ``end_lr`` geometrically over
       ``num_steps`` optimizer steps, one batch of ``data`` per step (``data`` is cycled).
    2. The loss is smoothed by an exponential moving average (weight ``smoothing`` on the new
       point) with bias correction, so the first points are not pulled towards zero.
    3. The test stops early when the smoothed loss exceeds ``diverge_factor`` times its minimum
       or a loss is not finite: the LR of that step is the *divergence LR*.
    4. The suggestion is the LR where the smoothed loss falls fastest per decade of LR (steepest
       negative slope, before the minimum), capped at ``max_fraction`` of the LR at the minimum
       of the smoothed loss: the minimum is already close to the divergence point.
    5. Model and optimizer state are restored afterwards (weights, buffers, optimizer moments
       and LRs, train/eval mode), so the real training starts from where it was.

The loss of each step is read on the host (one synchronization per step): the stopping rule
needs it, and the test is a short, separate run.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrdoctor.collectors.collector import MAX_FLUSH_EVERY, Collector

# Steps at the start of the curve ignored by the slope search: the average is still settling.
SKIP_START_FRACTION = 0.1
# The smoothed loss must have been tracked this many steps before divergence can stop the test.
MIN_STEPS_BEFORE_STOP = 5


@dataclass(frozen=True, slots=True)
class RangeTestResult:
    """The curve and the pick of an LR range test.

    Attributes:
        lrs: LR used at each step.
        losses: loss of each step (as computed, NaN/inf kept).
        smoothed: bias-corrected exponential moving average of ``losses``.
        suggested_lr: the LR to train with.
        steepest_lr: LR of steepest descent of the smoothed loss (per decade of LR).
        min_loss_lr: LR at the minimum of the smoothed loss.
        diverged_lr: LR at which the test stopped because the loss diverged, or None.
        logdir: the run directory written, or None.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float
    steepest_lr: float
    min_loss_lr: float
    diverged_lr: float | None
    logdir: str | None

    def to_json(self) -> dict[str, Any]:
        """The pick and its inputs as JSON-ready values (curve included)."""
        return {
            "suggested_lr": self.suggested_lr,
            "steepest_lr": self.steepest_lr,
            "min_loss_lr": self.min_loss_lr,
            "diverged_lr": self.diverged_lr,
            "lrs": self.lrs.tolist(),
            "losses": [float(x) if np.isfinite(x) else None for x in self.losses],
            "smoothed": [float(x) if np.isfinite(x) else None for x in self.smoothed],
        }


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    data: Iterable[tuple[Any, Any]],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.05,
    diverge_factor: float = 4.0,
    max_fraction: float = 0.1,
    logdir: str | os.PathLike | None = None,
    batch_size: int | None = None,
) -> RangeTestResult:
    """Run an LR range test on ``model`` and suggest an LR (see the module notes).

    Args:
        model: the model to train (moved nowhere: batches go to its device).
        optimizer: its optimizer; every param group gets the swept LR.
        loss_fn: ``loss_fn(model(inputs), targets)`` -> scalar loss tensor.
        data: iterable of ``(inputs, targets)`` batches; restarted when exhausted (a one-shot
            iterator that runs out ends the sweep early).
        start_lr: LR of the first step (> 0).
        end_lr: LR of the last step (> start_lr).
        num_steps: optimizer steps of the sweep (>= 2 ... in practice 50-300).
        smoothing: weight of a new loss in the moving average, in (0, 1].
        diverge_factor: stop when the smoothed loss exceeds this times its minimum (> 1).
        max_fraction: the suggestion is at most this fraction of the LR at the minimum, in (0, 1].
        logdir: when given, the test is logged there as a run (``run_kind`` "lr_range_test",
            ``lrdoctor/loss`` and ``lrdoctor/lr/pg0`` per step, ``suggested_lr`` in its run info).
        batch_size: samples per batch, for the run description (inferred when None).

    Returns:
        The curve and the suggested LR.

    Raises:
        ValueError: an argument is out of range, or ``data`` yields no batch.
    """
    _check(start_lr, end_lr, num_steps, smoothing, diverge_factor, max_fraction)
    schedule = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))
    device = next(model.parameters()).device
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    col = None
    if logdir is not None:
        info = {"lr": start_lr, "start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps}
        col = Collector(
            logdir,
            model=model,
            optimizer=optimizer,
            batch_size=batch_size,
            run_kind="lr_range_test",
            flush_every=min(num_steps, MAX_FLUSH_EVERY),
            info=info,
        )
    lrs, losses, smoothed = [], [], []
    diverged_lr = None
    avg, best = 0.0, float("inf")
    try:
        model.train()
        # Not strict: the schedule ends the sweep, or a one-shot iterator running out does.
        for i, (lr, (inputs, targets)) in enumerate(zip(schedule, _cycle(data), strict=False)):
            _set_lr(optimizer, float(lr))
            optimizer.zero_grad()
            loss = loss_fn(model(_to(inputs, device)), _to(targets, device))
            loss.backward()
            optimizer.step()
            value = loss.item()
            avg = (1 - smoothing) * avg + smoothing * value
            smooth = avg / (1 - (1 - smoothing) ** (i + 1))
            lrs.append(float(lr))
            losses.append(value)
            smoothed.append(smooth)
            if col is not None:
                col.step(loss, smoothed_loss=smooth)
            if not np.isfinite(smooth) or (i >= MIN_STEPS_BEFORE_STOP and smooth > diverge_factor * best):
                diverged_lr = float(lr)
                break
            best = min(best, smooth)
        curve = {"lrs": np.array(lrs), "losses": np.array(losses), "smoothed": np.array(smoothed)}
        suggested, steepest, at_min = suggest_lr(curve["lrs"], curve["smoothed"], max_fraction)
        result = RangeTestResult(
            **curve,
            suggested_lr=suggested,
            steepest_lr=steepest,
            min_loss_lr=at_min,
            diverged_lr=diverged_lr,
            logdir=os.fspath(logdir) if logdir is not None else None,
        )
        if col is not None:
            col.update_info(
                suggested_lr=result.suggested_lr,
                steepest_lr=result.steepest_lr,
                min_loss_lr=result.min_loss_lr,
                diverged_lr=result.diverged_lr,
            )
        return result
    finally:
        if col is not None:
            col.close()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)


def suggest_lr(
    lrs: np.ndarray, smoothed: np.ndarray, max_fraction: float = 0.1
) -> tuple[float, float, float]:
    """The pick from a smoothed loss-vs-LR curve (module notes, step 4).

    Args:
        lrs: increasing LRs, one per point.
        smoothed: smoothed loss at each LR (non-finite points are ignored).
        max_fraction: cap of the suggestion, as a fraction of the LR at the minimum loss.

    Returns:
        ``(suggested_lr, steepest_lr, min_loss_lr)``.

    Raises:
        ValueError: no finite point.
    """
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise ValueError("the range test produced no finite loss")
    lrs, smoothed = lrs[finite], smoothed[finite]
    i_min = int(np.argmin(smoothed))
    min_loss_lr = float(lrs[i_min])
    start = int(len(lrs) * SKIP_START_FRACTION)
    if i_min - start >= 2:
        slope = np.gradient(smoothed[start : i_min + 1], np.log10(lrs[start : i_min + 1]))
        steepest_lr = float(lrs[start + int(np.argmin(slope))])
    else:  # the loss rose from the start: nothing to descend
        steepest_lr = min_loss_lr
    return min(steepest_lr, max_fraction * min_loss_lr), steepest_lr, min_loss_lr


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def _cycle(data: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Batches of ``data``, restarted when exhausted; ends when a pass yields none (an iterator)."""
    first = True
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty and first:
            raise ValueError("data yielded no batch")
        if empty:
            return
        first = False


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _check(
    start_lr: float,
    end_lr: float,
    num_steps: int,
    smoothing: float,
    diverge_factor: float,
    max_fraction: float,
) -> None:
    if not start_lr > 0:
        raise ValueError(f"start_lr must be > 0, got {start_lr!r}")
    if not end_lr > start_lr:
        raise ValueError(f"end_lr must be > start_lr ({start_lr!r}), got {end_lr!r}")
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}")
    if not 0 < smoothing <= 1:
        raise ValueError(f"smoothing must be in (0, 1], got {smoothing!r}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    if not 0 < max_fraction <= 1:
        raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction!r}")
