"""``lr_range_test``: the run is an LR range test, not a training run.

A range test raises the LR exponentially until the loss blows up, on purpose; judging it as a
training run would raise a false LR-too-high alarm. It gets this INFO finding (with the LR it
suggests, if known) and the verdict ``inconclusive``.
"""

from __future__ import annotations

from lrdoctor.analyzers.detectors.context import DetectorContext, hp_float, loss_span
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import fmt


def is_range_test(run: Run) -> bool:
    """True when the run says it is an LR range test (hparams ``run_kind`` == "lr_range_test")."""
    return str(run.hparams.get("run_kind", "")).lower() == "lr_range_test"


def detect_lr_range_test(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Mark an LR range test.

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        One INFO for a range test, else nothing. Evidence: ``suggested_lr`` when known.

    Example:
        hparams {"run_kind": "lr_range_test", "suggested_lr": 0.03}: "use an LR near 0.03".
    """
    if not is_range_test(run):
        return []
    lr = hp_float(run, "suggested_lr")
    first, last = loss_span(run)
    message = (
        "This run is an LR range test: the LR rises on purpose until the loss blows up, so it is not "
        "judged as a training run."
    )
    if lr is not None:
        message += f" It suggests an LR of {fmt(lr)}."
    fix = f"train with an LR near {fmt(lr)}" if lr is not None else "pick the LR where the loss fell fastest"
    return [
        Finding(
            "lr_range_test",
            Severity.INFO,
            first,
            (first, last),
            {"suggested_lr": lr} if lr is not None else {},
            message,
            fix,
            signal="lr",
        )
    ]
