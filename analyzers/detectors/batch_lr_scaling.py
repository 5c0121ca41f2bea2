"""``batch_lr_scaling``: batch size changed against a run that worked, but the LR was not scaled.

The linear scaling rule: LR_new = LR_base x B_new / B_base. The reference (the base) is the run
that *worked*: a sibling run with a healthy verdict (same parent folder; same optimizer and model
kind when known; not an LR range test) with another batch size, that ended at a loss no higher
than this run's -- so a healthy run is never told to scale from a sibling that did worse than
itself. The one sharing the most other hyperparameters wins, then the closest batch size. The
finding is made when the run's LR is off the rule by more than ``MISMATCH_FACTOR`` while it lies
within that factor of the reference's LR -- the LR was carried over without scaling. LR range
tests neither get the finding nor serve as a reference. It is a WARNING when the run is
unhealthy on its own or ends with a loss over ``WORSE_END_RATIO`` x the reference's; the
verdict then follows the direction (`verdict`). This is a cross-run rule, so it runs on the
audit's second pass, when the siblings' verdicts are known (`DetectorContext.peer_verdicts`).
"""

from __future__ import annotations

import math
import posixpath

from lrdoctor.analyzers.detectors.context import (
    DetectorContext,
    base_lr,
    batch_size,
    loss_span,
    model_kind,
    optimizer_name,
)
from lrdoctor.analyzers.detectors.lr_range_test import is_range_test
from lrdoctor.analyzers.findings import Finding, Severity, Verdict
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import LossProfile, fmt, loss_profile

MISMATCH_FACTOR = 2.0  # LR off from the rule's value by more than this factor (either way): flagged
WORSE_END_RATIO = 2.0  # end loss over the reference's end loss: clearly worse at or above this


_VARIED = ("batch_size", "lr")  # what the rule relates; not counted as similarity


def _shared_hparams(a: Run, b: Run) -> int:
    """How many hyperparameters (besides batch size and LR) two runs have equal: similarity."""
    return sum(1 for k, v in a.hparams.items() if k not in _VARIED and k in b.hparams and b.hparams[k] == v)


def _worked_as_well(ref: Run, mine: LossProfile | None) -> bool:
    """True when ``ref`` ended at a loss no higher than ``mine`` (or either end is unknown)."""
    theirs = loss_profile(ref)
    return mine is None or theirs is None or theirs.end <= mine.end


def _comparable(a: Run, b: Run) -> bool:
    """Same folder, and the same optimizer family and model kind wherever both are known."""
    if posixpath.dirname(a.name) != posixpath.dirname(b.name):
        return False
    for get in (optimizer_name, model_kind):
        x, y = get(a), get(b)
        if x is not None and y is not None and x != y:
            return False
    return True


def detect_batch_lr_scaling(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Compare the run's LR with the linear scaling rule applied to a healthy sibling run.

    Args:
        run: the run to examine (needs ``batch_size`` and an LR).
        context: peers and their verdicts; without verdicts nothing is reported.

    Returns:
        At most one finding: WARNING when the run is not healthy or ends clearly worse than
        the reference, else INFO. Evidence: ``batch_size``, ``reference_batch_size``, ``lr``,
        ``reference_lr``, ``rule_lr``, ``off_by_ratio`` (LR / rule LR), ``end_loss_ratio``.

    Example:
        batch_32 healthy at LR 0.01, batch_256 at LR 0.01: "the linear rule gives LR 0.08".
    """
    if context is None or not context.peer_verdicts or is_range_test(run):
        return []
    b, lr = batch_size(run), base_lr(run)
    if b is None or lr is None:
        return []
    mine = loss_profile(run)
    refs = [
        p
        for p in context.peers
        if p.name != run.name
        and context.peer_verdicts.get(p.name) is Verdict.HEALTHY
        and batch_size(p) not in (None, b)
        and base_lr(p) is not None
        and not is_range_test(p)
        and _comparable(run, p)
        and _worked_as_well(p, mine)
    ]
    if not refs:
        return []
    ref = min(refs, key=lambda p: (-_shared_hparams(run, p), abs(math.log(batch_size(p) / b)), p.name))
    b0, lr0 = batch_size(ref), base_lr(ref)
    rule = lr0 * b / b0
    off = lr / rule
    carried_over = abs(math.log(lr / lr0)) <= math.log(MISMATCH_FACTOR)
    if 1 / MISMATCH_FACTOR <= off <= MISMATCH_FACTOR or not carried_over:
        return []
    own, theirs = context.peer_verdicts.get(run.name), loss_profile(ref)
    worse = mine.end / theirs.end if mine and theirs and theirs.end > 0 else 1.0
    severity = Severity.INFO if own is Verdict.HEALTHY and worse < WORSE_END_RATIO else Severity.WARNING
    step = loss_span(run)[0]
    message = (
        f"This run uses batch {b} with LR {fmt(lr)}. The healthy run {ref.name!r} uses batch {b0} "
        f"with LR {fmt(lr0)}; the linear scaling rule (LR x {fmt(b / b0)}) gives {fmt(rule)}, "
        f"{fmt(max(off, 1 / off))}x {'lower' if off > 1 else 'higher'} than used."
        + (f" It ends at a loss {fmt(worse)}x the reference's." if worse >= WORSE_END_RATIO else "")
    )
    fix = f"with batch {b} the linear rule gives LR {fmt(rule)} from the batch-{b0} run's {fmt(lr0)}"
    return [
        Finding(
            "batch_lr_scaling",
            severity,
            step,
            (step, step),
            {
                "batch_size": float(b),
                "reference_batch_size": float(b0),
                "lr": lr,
                "reference_lr": lr0,
                "rule_lr": rule,
                "off_by_ratio": off,
                "end_loss_ratio": worse,
            },
            message,
            fix,
            signal="lr",
        )
    ]
