"""Writer-specific tag names -> canonical signals (``loss``, ``lr``, ...).

Each signal has an ordered list of patterns; the first pattern that matches any tag wins, so
step-level curves are preferred over epoch-level ones (``train_loss_step`` before
``train_loss_epoch``, Keras ``batch_loss`` before ``epoch_loss``). Matching ignores case.
Tags from a Keras-style ``validation/`` sub-folder arrive prefixed with ``validation/``
(`logdir.py`).

Covered writers: our collector (``lrdoctor/...``), Hugging Face Trainer (``train/loss``,
``train/learning_rate``, ``train/grad_norm``, ``eval/loss``), PyTorch Lightning
(``train_loss[_step]``, ``val_loss``, ``lr-SGD``, ``lr-Adam/pg1``, ``grad_2.0_norm_total``),
Keras/TF2 (``batch_loss``, ``epoch_loss``, ``epoch_learning_rate``), plain torch examples
(``Loss/train``, ``loss``, ``LR``, ``lr``). A user override ``{"loss": "my/tag"}`` beats all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_LOSS = r"(?:batch_|epoch_)?loss"
# A tag naming a held-out split (validation, evaluation, test) as one of its words.
_HELD_OUT = r"(?:.*[/_ .-])?(?:val|valid|validation|eval|evaluation|test)(?:[/_ .-]|\Z)"
SIGNAL_PATTERNS: dict[str, tuple[str, ...]] = {
    "loss": (
        r"lrdoctor/loss",
        r"train/loss",
        r"train_loss_step",
        r"train/loss_step",
        r"train_loss",
        r"loss/train(?:ing)?",
        r"train(?:ing)?[_/ ]loss",
        r"batch_loss",
        r"loss",
        r"train_loss_epoch",
        r"epoch_loss",
        r"train/epoch_loss",
        # Last resort: any other tag with "loss" in it that names no held-out split (the first
        # in name order: YOLO's train/box_loss, an RL script's episode/MSE Loss).
        r"(?!" + _HELD_OUT + r").*loss.*",
    ),
    "val_loss": (
        r"lrdoctor/val_loss",
        r"eval/loss",
        r"val_loss(?:_epoch)?",
        r"val(?:idation)?/loss",
        r"loss/val(?:id|idation)?",
        r"validation/" + _LOSS,
        r"validation/evaluation_loss_vs_iterations",
        r"valid(?:ation)?_loss",
        r"test_loss",
        r"loss/test",
        _HELD_OUT + r".*loss.*",  # last resort, as for "loss"
    ),
    "grad_norm": (
        r"lrdoctor/grad_norm",
        r"train/grad_norm",
        r"grad_2\.0_norm_total(?:_step)?",
        r"grad_norm(?:_total)?",
        r"grad(?:ient)?s?[_/]norm",
        r"gradient_norm",
    ),
    "accuracy": (
        r"lrdoctor/accuracy",
        r"train/acc(?:uracy)?",
        r"train_acc(?:uracy)?_step",
        r"train_acc(?:uracy)?",
        r"acc(?:uracy)?/train",
        r"batch_(?:acc|accuracy)",
        r"acc(?:uracy)?",
        r"train_acc(?:uracy)?_epoch",
        r"epoch_(?:acc|accuracy)",
    ),
    "val_accuracy": (
        r"lrdoctor/val_accuracy",
        r"eval/acc(?:uracy)?",
        r"val_acc(?:uracy)?(?:_epoch)?",
        r"val(?:idation)?/acc(?:uracy)?",
        r"acc(?:uracy)?/val(?:id|idation)?",
        r"validation/(?:epoch_|batch_)?acc(?:uracy)?",
        r"test_acc(?:uracy)?",
        r"acc(?:uracy)?/test",
    ),
}

# LR tags: one per param group. Group name from the tag, "" for a single unnamed group.
_LR_PATTERNS: tuple[str, ...] = (
    r"lrdoctor/lr/(?P<group>.+)",
    r"lrdoctor/lr",
    r"train/learning_rate",
    r"lr-(?P<opt>[A-Za-z_]+)(?:-\d+)?(?:/(?P<group>pg\d+))?(?:_step|_epoch)?",
    r"(?:train/)?(?:epoch_|batch_)?learning_rate",
    r"(?:train/)?lr(?:/(?P<group>.+))?",
    r"learning[_ ]rate/(?P<group>.+)",
)
_COMPILED = {s: [re.compile(p + r"\Z", re.IGNORECASE) for p in pats] for s, pats in SIGNAL_PATTERNS.items()}
_LR_COMPILED = [re.compile(p + r"\Z", re.IGNORECASE) for p in _LR_PATTERNS]
_LR_OPT = re.compile(r"lr-(?P<opt>[A-Za-z_]+?)(?:-\d+)?(?:/pg\d+)?(?:_step|_epoch)?\Z", re.IGNORECASE)


def map_signals(tags: Iterable[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map a run's tag names to canonical signals.

    Args:
        tags: the run's scalar tag names.
        overrides: ``{signal: tag}`` chosen by the user; a tag absent from ``tags`` is ignored.

    Returns:
        ``{signal: tag}`` for each signal found. Learning rates: ``lr`` is the first param group;
        when there are several groups each also has ``lr/<group>``.
    """
    tags = sorted(tags)
    out: dict[str, str] = {}
    for signal, patterns in _COMPILED.items():
        for pat in patterns:
            hit = next((t for t in tags if pat.match(t)), None)
            if hit is not None:
                out[signal] = hit
                break
    for pat in _LR_COMPILED:
        groups = {}
        for t in tags:
            m = pat.match(t)
            if m:
                groups.setdefault(m.groupdict().get("group") or "", t)
        if groups:
            ordered = sorted(groups.items())
            out["lr"] = ordered[0][1]
            if len(ordered) > 1:
                for g, t in ordered:
                    out[f"lr/{g or 'pg0'}"] = t
            break
    for signal, tag in (overrides or {}).items():
        if tag in tags:
            out[signal] = tag
    return out


def optimizer_from_tags(tags: Iterable[str]) -> str | None:
    """The optimizer class named by Lightning's LearningRateMonitor tags (``lr-Adam/pg1``)."""
    for t in sorted(tags):
        m = _LR_OPT.match(t)
        if m:
            return m.group("opt")
    return None
