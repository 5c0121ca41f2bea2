"""The data model everything else stands on: a `Run` of named scalar `Series`.

A *run* is a directory that directly holds ``*tfevents*`` files (plus the folders merged into
it, see `logdir.py`). Its name is the path relative to the logdir, '/'-separated.

A *series* is one scalar tag of one run, at full resolution:

- ``steps``: int64, non-decreasing. A step may repeat when a writer logs several points at one
  step (e.g. per-batch values logged against the epoch); after a restart, the later file's
  points win (see `logdir.merge_segments`).
- ``values``: float64, NaN and +-inf kept as written.
- ``wall_times``: float64, seconds since the epoch.

*Signals* are canonical names for the curves the analyzers need, mapped from whatever tag the
writer used (`tags.py`): ``loss``, ``val_loss``, ``grad_norm``, ``lr`` (the first param group;
``lr/<group>`` for every group when there are several), ``accuracy``, ``val_accuracy``.

*Hyperparameters* are a flat ``{name: str | float | int | bool | None}``. Whatever the writer
stored is kept under its own name; these canonical keys are filled in when known:

=============== ============================================================
``optimizer``   optimizer class name: "SGD", "Adam", "AdamW", "RMSprop", ...
``lr``          initial learning rate (first param group), float
``batch_size``  samples per optimizer step, int
``model_kind``  "cnn", "rnn", "transformer" or "mlp"
``batchnorm``   bool: the model has BatchNorm layers
``grad_clip``   float max norm if gradients are clipped, else absent/None
``momentum``    float (SGD), ``nesterov`` bool, ``weight_decay`` float
``num_classes`` int, when known (chance-level accuracy is 1/num_classes)
``run_kind``    "train" (default) or "lr_range_test"
``suggested_lr`` float, for an LR range test: the LR it suggests
=============== ============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIGNALS = ("loss", "val_loss", "grad_norm", "lr", "accuracy", "val_accuracy")

HParamValue = str | float | int | bool | None


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """One scalar curve at full resolution (arrays are read-only; see module docstring)."""

    tag: str
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray

    def __post_init__(self) -> None:
        for a in (self.steps, self.values, self.wall_times):
            a.flags.writeable = False

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def nbytes(self) -> int:
        """Bytes held by the three arrays."""
        return self.steps.nbytes + self.values.nbytes + self.wall_times.nbytes


@dataclass(frozen=True, slots=True, eq=False)
class Run:
    """One training run: its curves, what is known of its hyperparameters, and read problems.

    Attributes:
        name: path relative to the logdir, '/'-separated ("." when the logdir itself is a run).
        path: absolute directory of the run.
        scalars: every scalar tag, by the writer's tag name.
        signals: canonical signal name -> tag name in ``scalars`` (only signals found).
        hparams: hyperparameters and run facts (see module docstring for canonical keys).
        warnings: one-line ``"path:offset: problem"`` strings from reading this run's files.
        last_write: newest modification time of the run's event files, seconds since the epoch.
        files: the event files read, in merge order.
    """

    name: str
    path: str
    scalars: dict[str, Series]
    signals: dict[str, str]
    hparams: dict[str, HParamValue] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    last_write: float = 0.0
    files: tuple[str, ...] = ()

    def signal(self, name: str) -> Series | None:
        """The series behind canonical signal ``name`` ("loss", "lr", "lr/pg1", ...), or None."""
        tag = self.signals.get(name)
        return None if tag is None else self.scalars.get(tag)

    def lr_groups(self) -> dict[str, Series]:
        """LR series per param group name ({"": lr} for a single group)."""
        groups = {k[3:]: self.scalars[t] for k, t in self.signals.items() if k.startswith("lr/")}
        if not groups and "lr" in self.signals:
            groups[""] = self.scalars[self.signals["lr"]]
        return groups

    @property
    def num_points(self) -> int:
        """Total scalar points held."""
        return sum(len(s) for s in self.scalars.values())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no curve data)."""
        return {
            "run": self.name,
            "signals": dict(self.signals),
            "hparams": dict(self.hparams),
            "tags": sorted(self.scalars),
            "points": self.num_points,
            "warnings": list(self.warnings),
            "last_write": self.last_write,
        }
