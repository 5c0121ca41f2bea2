"""What a detector may know beyond its own run, and helpers to read a run's hyperparameters.

A detector is ``detect_<code>(run, context) -> list[Finding]``. The context carries the other
runs of the logdir (for cross-run rules such as linear LR scaling) and, on the audit's second
pass, the verdicts already reached for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lrdoctor.analyzers.findings import Verdict
from lrdoctor.analyzers.run import Run

# Hyperparameter names other writers use for the gradient-clipping max norm.
GRAD_CLIP_KEYS = ("grad_clip", "max_grad_norm", "gradient_clip_val", "clip_grad_norm", "clip", "clipnorm")
# Architecture words that make a run a recurrent model when ``model_kind`` is absent.
RNN_WORDS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class DetectorContext:
    """What a detector may use besides the run itself.

    Attributes:
        peers: the other runs of the same logdir.
        peer_verdicts: verdicts already reached for runs (by name); empty on the first pass.
    """

    peers: tuple[Run, ...] = ()
    peer_verdicts: Mapping[str, Verdict] = field(default_factory=dict)


def hp_float(run: Run, *keys: str) -> float | None:
    """The first of ``keys`` in ``run.hparams`` that reads as a finite float, else None."""
    for k in keys:
        v = run.hparams.get(k)
        if isinstance(v, bool) or v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f):
            return f
    return None


def model_kind(run: Run) -> str | None:
    """ "cnn", "rnn", "transformer", "mlp" from ``model_kind`` (or an RNN-naming ``arch``/``model``)."""
    kind = run.hparams.get("model_kind")
    if isinstance(kind, str) and kind:
        kind = kind.lower()
        return "rnn" if kind in RNN_WORDS else kind
    for key in ("arch", "model", "model_type", "cell"):
        v = run.hparams.get(key)
        if isinstance(v, str) and any(w in v.lower() for w in RNN_WORDS):
            return "rnn"
    return None


def grad_clip(run: Run) -> float | None:
    """Max gradient norm if the run clips gradients (a positive finite value), else None."""
    v = hp_float(run, *GRAD_CLIP_KEYS)
    return v if v is not None and v > 0 else None


def optimizer_name(run: Run) -> str | None:
    """The optimizer family: "SGD", "Adam" (Adam, AdamW, ...), or the raw name; None if unknown."""
    v = run.hparams.get("optimizer")
    if not isinstance(v, str) or not v:
        return None
    low = v.lower()
    if low.startswith("adam") or low in ("nadam", "radam"):
        return "Adam"
    if low.startswith("sgd"):
        return "SGD"
    return v


def base_lr(run: Run) -> float | None:
    """The run's base learning rate: the peak of its LR curve, else the ``lr`` hyperparameter.

    The peak (not the first value) so that a warmup ramp's first tiny LR is not taken for the
    LR the run was configured with.
    """
    lr = run.signal("lr")
    if lr is not None and len(lr):
        finite = np.asarray(lr.values)[np.isfinite(lr.values)]
        if len(finite) and finite.max() > 0:
            return float(finite.max())
    v = hp_float(run, "lr")
    return v if v is not None and v > 0 else None


def batch_size(run: Run) -> int | None:
    """The ``batch_size`` hyperparameter when it is a positive int, else None."""
    b = run.hparams.get("batch_size")
    return b if isinstance(b, int) and not isinstance(b, bool) and b > 0 else None


def loss_span(run: Run) -> tuple[int, int]:
    """(first, last) step of the training loss; (0, 0) without one (where run-level notes go)."""
    loss = run.signal("loss")
    if loss is None or len(loss) == 0:
        return 0, 0
    return int(loss.steps[0]), int(loss.steps[-1])


def num_classes(run: Run) -> int | None:
    """Number of classes when known (>= 2), else None."""
    v = hp_float(run, "num_classes", "n_classes", "num_labels")
    return int(v) if v is not None and v >= 2 else None


def lr_at(run: Run, step: int) -> float | None:
    """The LR in effect at ``step`` (last logged value at or before it), or None."""
    lr = run.signal("lr")
    if lr is None or len(lr) == 0:
        return None
    i = int(np.searchsorted(lr.steps, step, side="right")) - 1
    v = float(lr.values[max(i, 0)])
    return v if np.isfinite(v) else None
