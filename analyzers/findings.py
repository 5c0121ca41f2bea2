"""What the analyzers say about a run: findings (symptoms) and a verdict (cause).

A finding code names an observed *symptom* (``loss_oscillating``); the verdict names the
*cause* (``lr_too_high``). Codes and verdicts are public (JSON output, ``--fail-on``): add new
ones, never rename.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    """How much a finding matters. WARNING and ERROR are what users act on."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Verdict(str, enum.Enum):
    """The diagnosis of one run."""

    HEALTHY = "healthy"
    LR_TOO_HIGH = "lr_too_high"
    LR_TOO_LOW = "lr_too_low"
    INCONCLUSIVE = "inconclusive"


# Every finding code a detector may emit (public; add, never rename).
FINDING_CODES = (
    "nan_loss",
    "loss_diverging",
    "loss_oscillating",
    "stuck_at_chance",
    "slow_decrease",
    "exploding_gradients",
    "vanishing_gradients",
    "lr_out_of_range",
    "batch_lr_scaling",
    "no_grad_clipping",
    "lr_range_test",
    "lr_decay_drop",
)


def json_number(x: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so documents stay valid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


@dataclass(frozen=True, slots=True)
class Finding:
    """One observed symptom, JSON-ready.

    Attributes:
        code: one of `FINDING_CODES`.
        severity: INFO / WARNING / ERROR.
        step: first step at which it was detectable.
        steps: (first, last) step of the window the dashboard shades.
        evidence: figures behind it; keys carry a unit suffix (``rise_over_min_ratio``).
        message: one paragraph in plain words, with the numbers.
        fix: what to change, with numbers ("lower the LR from 0.3 to 0.03-0.1").
        signal: the signal it was seen on ("loss", "grad_norm", ...), for drawing.
    """

    code: str
    severity: Severity
    step: int
    steps: tuple[int, int]
    evidence: dict[str, float] = field(default_factory=dict)
    message: str = ""
    fix: str = ""
    signal: str = "loss"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "step": int(self.step),
            "steps": [int(self.steps[0]), int(self.steps[1])],
            "signal": self.signal,
            "message": self.message,
            "fix": self.fix,
            "evidence": {k: json_number(v) for k, v in self.evidence.items()},
        }
