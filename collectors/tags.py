"""Tag names our collector writes: the file contract with `lrdoctor.analyzers` (its `tags.py`).

=================================== ==============================================================
``lrdoctor/loss``                   training loss of the optimizer step (mean over micro-batches)
``lrdoctor/grad_norm``              total gradient L2 norm, BEFORE clipping, unscaled under AMP
``lrdoctor/lr/pg0``, ``/pg1``, ...  LR of each param group as the optimizer used it (always /pgN)
``lrdoctor/accuracy``               training accuracy (when given)
``lrdoctor/val_loss``               validation loss (when given)
``lrdoctor/val_accuracy``           validation accuracy (when given)
``lrdoctor/grad_norm/<module>``     L2 norm of one top-level module's gradients (lower cadence)
``lrdoctor/extra/<name>``           any other scalar the user passes
``lrdoctor/run_info``               text summary: JSON object describing the run (`hparams.py`)
=================================== ==============================================================
"""

from __future__ import annotations

from functools import cache

PREFIX = "lrdoctor/"
LOSS = PREFIX + "loss"
GRAD_NORM = PREFIX + "grad_norm"
ACCURACY = PREFIX + "accuracy"
VAL_LOSS = PREFIX + "val_loss"
VAL_ACCURACY = PREFIX + "val_accuracy"
RUN_INFO = PREFIX + "run_info"

# Keyword names of `Collector.step`/`Collector.log` that have a tag of their own.
_NAMED = {"loss": LOSS, "accuracy": ACCURACY, "val_loss": VAL_LOSS, "val_accuracy": VAL_ACCURACY}


@cache  # called every step: build each name once
def lr_tag(group: int) -> str:
    """Tag of param group ``group``'s learning rate (``lrdoctor/lr/pg0``)."""
    return f"{PREFIX}lr/pg{group}"


def module_grad_norm_tag(module: str) -> str:
    """Tag of one top-level module's gradient norm (``lrdoctor/grad_norm/encoder``)."""
    return f"{GRAD_NORM}/{module}"


@cache
def scalar_tag(name: str) -> str:
    """Tag of a scalar passed by keyword: our own tag for known names, else ``lrdoctor/extra/<name>``."""
    return _NAMED.get(name, f"{PREFIX}extra/{name}")
