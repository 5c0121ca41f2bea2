#!/usr/bin/env python3
"""Train a labeled set of small REAL runs on CPU, for measuring the analyzers' verdicts.

Each *sweep* fixes a model, optimizer, batch size and LR schedule and varies the learning rate
over a half-decade grid (1e-4, 3e-4, 1e-3, ...). Runs are labeled by OUTCOME only, never by the
shape of the curve:

- the *final loss* of a run is the full-training-set loss of its final model (inf if non-finite);
- the best run of a sweep is the one with the lowest final loss;
- normalized gap = (final - best) / (initial - best), initial being the full-set loss at step 0;
- gap <= 0.15: ``healthy``; gap >= 0.35: ``lr_too_high`` if its LR is above the best run's,
  ``lr_too_low`` if below; a non-finite logged loss or grad norm: ``lr_too_high``;
  anything in between is ``ambiguous`` (not scored);
- label-quality rule: a sweep in which no LR learned anything -- its best run's normalized
  improvement (initial - best) / initial is below ``MIN_BEST_IMPROVEMENT`` (10%) -- gives no
  outcome to compare against (every gap is noise), so its finite runs are labeled ``weak_sweep``
  (not scored); its NaN runs stay ``lr_too_high``. This is a rule about the labels, not a
  threshold of the analyzers.

Runs are written with ``torch.utils.tensorboard.SummaryWriter`` using Hugging-Face-style tags
(``train/loss``, ``train/grad_norm``, ``train/learning_rate``, ``train/accuracy``, ``eval/loss``)
and ``add_hparams`` (which writes a timestamped sub-folder), so the analyzers are checked on
files written by another writer than ours.

Output: OUT/<sweep>/lr_<lr>/events...; OUT/labels.json =
``{run name: {"label", "gap", "final_loss", "initial_loss", "nan_step", "lr", "sweep", "family",
"optimizer", "model_kind"}}``. A run already present (its ``done.json`` exists) is not retrained.

``--set holdout`` trains a second set (other configurations and seeds) that was not looked at
while the detectors' thresholds were chosen; evaluate it the same way. labels.json covers the
sweeps trained in that call (``--sweeps`` narrows it).

``--set fresh`` trains a third set with other *tasks and shapes*, for checking that the verdicts
generalize: MSE regression on noisy targets (a loss floor far above 0, a loss that starts near
1), a memory task for GRU/LSTM (recall the first token), deeper CNNs, AdamW, warmup+cosine and
one-cycle schedules, and two other writers: Lightning-style tags logged every 5 steps
(``train_loss_step``, ``lr-AdamW``, hparams in the same event file) and Keras-style epoch-level
logging (``train/`` and ``validation/`` folders, ``epoch_loss`` once per epoch: 40-60 points, no
grad norm, no hparams). For those, a run's NaN step is the first *logged* non-finite step.

``--set fresh2`` trains a fourth set, made after the detectors of the second pass were fixed and
before the third pass changed them (its first score is the honest one): MLP classifiers on
other sklearn datasets (wine, breast cancer, iris; standardized features), a regression MLP on
sklearn's diabetes data (standardized), a CNN with a two-step decay, a BatchNorm CNN with
RMSprop, vanilla ``nn.RNN`` (tanh) models on a sign-of-the-sum task, batch sizes 16 and 128.

Example (190 runs, about 2 minutes on one core; the holdout set about 1 minute, fresh 3-5,
fresh2 (82 runs) under 1 minute):
    python benchmarks/make_labeled_runs.py bench_labeled
    python benchmarks/make_labeled_runs.py bench_labeled_holdout --set holdout
    python benchmarks/make_labeled_runs.py bench_labeled_fresh --set fresh
    python benchmarks/make_labeled_runs.py bench_labeled_fresh2 --set fresh2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

HEALTHY_GAP = 0.15  # normalized final-loss gap at or below which a run is healthy
BAD_GAP = 0.35  # gap at or above which a run is clearly worse than the best
MIN_BEST_IMPROVEMENT = 0.10  # best run's (initial - final) / initial below this: the sweep learned nothing
NAN_TAIL_STEPS = 10  # steps still logged after the first non-finite loss (then the run is stopped)

SGD_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
MOMENTUM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
ADAM_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Sweep:
    """One LR sweep: everything fixed but the learning rate."""

    name: str
    family: str  # "cnn", "rnn" or "mlp" (reported separately)
    model: str  # "cnn", "cnn_bn", "deepcnn", "deepcnn_bn", "rnn", "lstm", "gru", "mlp", "mlp_reg", "mlp_cls"
    optimizer: str  # "SGD", "SGDm", "Adam", "AdamW", "RMSprop"
    batch_size: int
    schedule: str  # "constant", "step", "multistep", "cosine" (with warmup), "onecycle", "warmup"
    steps: int  # optimizer steps (for epoch-level logging: epochs x steps per epoch)
    grad_clip: float | None = None
    seed: int = 1234  # model init and minibatch order
    task: str = ""  # "" (digits / sum-sequences, by family), "recall", "reg_std", "reg_floor",
    # "wine", "cancer", "iris" (classification), "diabetes" (regression), "sumsign" (sequences)
    writer: str = "hf"  # tag style: "hf" (every step), "lightning" (every 5 steps), "keras" (epochs)
    train_size: int = 0  # samples used for training (0: all); keras runs use epochs over them
    extra_lrs: tuple[float, ...] = ()  # LRs beyond the optimizer's grid (when its best is at the edge)

    @property
    def grid(self) -> tuple[float, ...]:
        grid = {
            "SGD": SGD_GRID,
            "SGDm": MOMENTUM_GRID,
            "Adam": ADAM_GRID,
            "AdamW": ADAM_GRID,
            "RMSprop": ADAM_GRID,
        }[self.optimizer]
        return grid + self.extra_lrs


SWEEPS = (
    Sweep("cnn_sgd_b64", "cnn", "cnn", "SGD", 64, "constant", 300),
    Sweep("cnn_sgdm_b64_step", "cnn", "cnn", "SGDm", 64, "step", 300),
    Sweep("cnn_adam_b32", "cnn", "cnn", "Adam", 32, "constant", 300),
    Sweep("cnnbn_sgd_b64", "cnn", "cnn_bn", "SGD", 64, "constant", 300),
    Sweep("cnnbn_sgdm_b256_cosine", "cnn", "cnn_bn", "SGDm", 256, "cosine", 250),
    Sweep("cnnbn_adam_b16_warmup", "cnn", "cnn_bn", "Adam", 16, "warmup", 300),
    Sweep("rnn_sgd_b32", "rnn", "rnn", "SGD", 32, "constant", 300),
    Sweep("rnn_adam_b64_onecycle", "rnn", "rnn", "Adam", 64, "onecycle", 300),
    Sweep("lstm_sgdm_b32", "rnn", "lstm", "SGDm", 32, "constant", 300),
    Sweep("lstm_adam_b32_clip", "rnn", "lstm", "Adam", 32, "constant", 300, grad_clip=1.0),
    Sweep("gru_adam_b128_step", "rnn", "gru", "Adam", 128, "step", 300),
    Sweep("gru_sgd_b16", "rnn", "gru", "SGD", 16, "constant", 300),
    Sweep("cnn_sgdm_b128", "cnn", "cnn", "SGDm", 128, "constant", 300),
    Sweep("cnnbn_adam_b64_cosine", "cnn", "cnn_bn", "Adam", 64, "cosine", 300),
    Sweep("rnn_sgdm_b64_clip", "rnn", "rnn", "SGDm", 64, "constant", 300, grad_clip=5.0),
    Sweep("gru_sgdm_b32_warmup", "rnn", "gru", "SGDm", 32, "warmup", 300),
    Sweep("lstm_sgd_b64_step", "rnn", "lstm", "SGD", 64, "step", 400),
    # Regression with MSE: an LR too high overflows to inf/NaN (the NaN-step check).
    Sweep("mlp_sgd_b32_mse", "mlp", "mlp", "SGD", 32, "constant", 300),
    Sweep("mlp_sgdm_b64_mse_warmup", "mlp", "mlp", "SGDm", 64, "warmup", 300),
)

# A second set, never looked at while choosing thresholds: other configurations, other seeds.
HOLDOUT_SWEEPS = (
    Sweep("cnn_adam_b128_onecycle", "cnn", "cnn", "Adam", 128, "onecycle", 300, seed=7),
    Sweep("cnnbn_sgdm_b32_step", "cnn", "cnn_bn", "SGDm", 32, "step", 300, seed=7),
    Sweep("cnn_sgd_b16_cosine", "cnn", "cnn", "SGD", 16, "cosine", 300, seed=7),
    Sweep("gru_adam_b32_cosine", "rnn", "gru", "Adam", 32, "cosine", 300, seed=7),
    Sweep("lstm_sgdm_b64_warmup_clip", "rnn", "lstm", "SGDm", 64, "warmup", 300, grad_clip=2.0, seed=7),
    Sweep("rnn_adam_b16", "rnn", "rnn", "Adam", 16, "constant", 300, seed=7),
    Sweep("mlp_adam_b16_mse", "mlp", "mlp", "Adam", 16, "constant", 300, seed=7),
    Sweep("mlp_sgd_b128_mse_step", "mlp", "mlp", "SGD", 128, "step", 300, seed=7),
)
# A third set with other tasks, shapes and writers (see the module docstring), new seeds.
FRESH_SWEEPS = (
    Sweep(
        "reg_mlp_adamw_b32_cosine",
        "mlp",
        "mlp_reg",
        "AdamW",
        32,
        "cosine",
        400,
        seed=4242,
        task="reg_std",
        writer="lightning",
    ),
    Sweep(
        "reg_mlp_sgdm_b64_epochs",
        "mlp",
        "mlp_reg",
        "SGDm",
        64,
        "constant",
        480,
        seed=4243,
        task="reg_floor",
        writer="keras",
        train_size=512,
    ),
    Sweep(
        "gru_recall_adam_b32_onecycle",
        "rnn",
        "gru",
        "Adam",
        32,
        "onecycle",
        400,
        seed=4244,
        task="recall",
        extra_lrs=(3.0,),
    ),
    Sweep(
        "lstm_recall_sgdm_b64_cosine_clip",
        "rnn",
        "lstm",
        "SGDm",
        64,
        "cosine",
        300,
        grad_clip=1.0,
        seed=4245,
        task="recall",
        writer="lightning",
        extra_lrs=(10.0, 30.0),
    ),
    Sweep(
        "deepcnnbn_adamw_b32_cosine",
        "cnn",
        "deepcnn_bn",
        "AdamW",
        32,
        "cosine",
        250,
        seed=4246,
        writer="lightning",
    ),
    Sweep("deepcnn_sgdm_b128_onecycle", "cnn", "deepcnn", "SGDm", 128, "onecycle", 200, seed=4247),
    Sweep(
        "cnn_sgd_b32_epochs_step",
        "cnn",
        "cnn",
        "SGD",
        32,
        "step",
        800,
        seed=4248,
        writer="keras",
        train_size=512,
    ),
    Sweep(
        "gru_recall_sgd_b32_epochs",
        "rnn",
        "gru",
        "SGD",
        32,
        "constant",
        640,
        seed=4249,
        task="recall",
        writer="keras",
        train_size=512,
        extra_lrs=(30.0, 100.0),
    ),
    Sweep(
        "reg_mlp_adam_b16_warmup", "mlp", "mlp_reg", "Adam", 16, "warmup", 300, seed=4250, task="reg_floor"
    ),
)
# A fourth set (see the module docstring): other datasets, a vanilla RNN, RMSprop, new seeds.
FRESH2_SWEEPS = (
    Sweep("wine_mlp_sgdm_b16", "mlp", "mlp_cls", "SGDm", 16, "constant", 300, seed=5101, task="wine"),
    Sweep(
        "cancer_mlp_rmsprop_b128_cosine",
        "mlp",
        "mlp_cls",
        "RMSprop",
        128,
        "cosine",
        300,
        seed=5102,
        task="cancer",
        writer="lightning",
    ),
    Sweep(
        "iris_mlp_adam_b16_epochs",
        "mlp",
        "mlp_cls",
        "Adam",
        16,
        "constant",
        540,
        seed=5103,
        task="iris",
        writer="keras",
    ),
    Sweep("diabetes_mlp_sgd_b32_step", "mlp", "mlp_reg", "SGD", 32, "step", 300, seed=5104, task="diabetes"),
    Sweep("cnn_sgdm_b16_multistep", "cnn", "cnn", "SGDm", 16, "multistep", 300, seed=5105),
    Sweep("cnnbn_rmsprop_b128_step", "cnn", "cnn_bn", "RMSprop", 128, "step", 200, seed=5106),
    Sweep("rnn_tanh_sgd_b128_sumsign", "rnn", "rnn", "SGD", 128, "constant", 300, seed=5107, task="sumsign"),
    Sweep(
        "rnn_tanh_rmsprop_b16_sumsign_clip",
        "rnn",
        "rnn",
        "RMSprop",
        16,
        "constant",
        300,
        grad_clip=1.0,
        seed=5108,
        task="sumsign",
    ),
)
SETS = {"main": SWEEPS, "holdout": HOLDOUT_SWEEPS, "fresh": FRESH_SWEEPS, "fresh2": FRESH2_SWEEPS}
LIGHTNING_EVERY = 5  # Lightning-style runs log every this many steps (log_every_n_steps)
RECALL_LEN, RECALL_TOKENS = 12, 5  # recall task: sequence length, vocabulary (= classes)

SEQ_LEN = 20  # steps per synthetic sequence
SEQ_CLASSES = 4
SUMSIGN_LEN = 16  # sign-of-the-sum task: sequence length (1 feature per step, 2 classes)
CLASSES_OF_TASK = {"wine": 3, "cancer": 2, "iris": 3, "sumsign": 2, "recall": 5}


def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits, scaled to [0, 1]: (N, 1, 8, 8) images, (N,) labels (10 classes)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(d.target, dtype=torch.long)


def sequence_data(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic sequences (N, SEQ_LEN, 4); the label is the channel with the largest sum."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, SEQ_LEN, SEQ_CLASSES, generator=g)
    return x, x.sum(dim=1).argmax(dim=1)


def recall_data(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot token sequences (N, RECALL_LEN, RECALL_TOKENS) with noise; the label is the first token.

    A memory task: the answer sits at the far end of the sequence from the read-out.
    """
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, RECALL_TOKENS, (n, RECALL_LEN), generator=g)
    x = nn.functional.one_hot(tokens, RECALL_TOKENS).float()
    return x + 0.3 * torch.randn(x.shape, generator=g), tokens[:, 0]


def regression_data(kind: str, n: int = 1024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A nonlinear regression on 8 Gaussian features with noisy targets: the MSE has a floor.

    ``reg_std``: targets standardized (the loss starts near 1, floor about 0.3 of the variance);
    ``reg_floor``: raw targets with noise of variance 1 (the loss floor is 1.0).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    signal = torch.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3]
    if kind == "reg_std":
        y = signal + 0.9 * torch.randn(n, generator=g)
        return x, (y - y.mean()) / y.std()
    return x, signal + torch.randn(n, generator=g)


def sklearn_data(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset that ships with sklearn, features standardized.

    ``wine`` (178 x 13, 3 classes), ``cancer`` (breast cancer, 569 x 30, 2 classes), ``iris``
    (150 x 4, 3 classes): class labels; ``diabetes`` (442 x 10): a standardized target for MSE.
    """
    from sklearn import datasets

    load = {
        "wine": datasets.load_wine,
        "cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "diabetes": datasets.load_diabetes,
    }[name]
    d = load()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    if name == "diabetes":
        y = torch.tensor(d.target, dtype=torch.float32)
        return x, (y - y.mean()) / y.std()
    return x, torch.tensor(d.target, dtype=torch.long)


def sumsign_data(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of Gaussian numbers (N, SUMSIGN_LEN, 1); the label is 1 when their sum is positive."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, SUMSIGN_LEN, 1, generator=g)
    return x, (x.sum(dim=(1, 2)) > 0).long()


class SeqClassifier(nn.Module):
    """A recurrent layer read out from its last hidden state."""

    def __init__(
        self, cell: str, hidden: int = 32, n_in: int = SEQ_CLASSES, n_out: int = SEQ_CLASSES
    ) -> None:
        super().__init__()
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def make_model(kind: str, task: str = "", n_in: int = 8) -> nn.Module:
    """The small model of a sweep (``n_in``: input features of the tabular MLPs)."""
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0))
    if kind == "mlp_reg":
        return nn.Sequential(
            nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Flatten(0)
        )
    if kind == "mlp_cls":
        return nn.Sequential(
            nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, CLASSES_OF_TASK[task])
        )
    if kind.startswith("deepcnn"):
        bn = kind.endswith("_bn")

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), *([nn.BatchNorm2d(cout)] if bn else []), nn.ReLU()]

        return nn.Sequential(
            *conv(1, 16),
            *conv(16, 32),
            nn.MaxPool2d(2),
            *conv(32, 32),
            *conv(32, 64),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, 10),
        )
    if kind.startswith("cnn"):
        bn = kind == "cnn_bn"

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1),
                *([nn.BatchNorm2d(cout)] if bn else []),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        return nn.Sequential(*block(1, 16), *block(16, 32), nn.Flatten(), nn.Linear(32 * 2 * 2, 10))
    if task == "recall":
        return SeqClassifier(kind, n_in=RECALL_TOKENS, n_out=RECALL_TOKENS)
    if task == "sumsign":
        return SeqClassifier(kind, n_in=1, n_out=2)
    return SeqClassifier(kind)


def lr_factor(schedule: str, steps: int):
    """Multiplier of the base LR at each step, for `torch.optim.lr_scheduler.LambdaLR`."""
    warm = max(1, steps // 10)
    if schedule == "constant":
        return lambda s: 1.0
    if schedule == "step":
        return lambda s: 1.0 if s < steps * 0.6 else 0.1
    if schedule == "multistep":
        return lambda s: 1.0 if s < steps * 0.5 else 0.1 if s < steps * 0.75 else 0.01
    if schedule == "cosine":
        return lambda s: (
            (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm)))
        )
    if schedule == "warmup":
        return lambda s: min(1.0, (s + 1) / warm)
    if schedule == "onecycle":
        peak = steps * 0.3
        return lambda s: (
            0.04
            + 0.96 * (s / peak if s < peak else 0.5 * (1 + math.cos(math.pi * (s - peak) / (steps - peak))))
        )
    raise ValueError(f"unknown schedule {schedule!r}")


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """SGD, SGD with momentum 0.9, Adam, AdamW (weight decay 0.01), or RMSprop."""
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr)
    if name == "SGDm":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "AdamW":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if name == "RMSprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class labels; MSE (digit value as a number) for the regression MLP."""
    if out.dim() == 1:
        return nn.functional.mse_loss(out, y.float())
    return nn.functional.cross_entropy(out, y)


@torch.no_grad()
def full_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The loss over the whole training set in eval mode (inf if non-finite)."""
    model.eval()
    loss = float(loss_fn(model(x), y))
    model.train()
    return loss if math.isfinite(loss) else math.inf


class TagLogger:
    """Writes one run's points in a writer's style and records the first logged non-finite step.

    ``hf``: every step, Hugging-Face tags, hparams via ``add_hparams`` (a sub-folder).
    ``lightning``: every `LIGHTNING_EVERY` steps, Lightning tags (``train_loss_step``,
    ``grad_2.0_norm_total_step``, ``lr-<Optimizer>``), hparams in the same event file.
    ``keras``: one point per epoch (the epoch's mean), ``epoch_*`` tags in ``train/`` and
    ``validation/`` folders, no grad norm, no hparams.
    """

    def __init__(self, style: str, out_dir: str, optimizer: str) -> None:
        self.style, self.optimizer = style, optimizer
        self.writer = SummaryWriter(os.path.join(out_dir, "train") if style == "keras" else out_dir)
        self.val_writer = SummaryWriter(os.path.join(out_dir, "validation")) if style == "keras" else None
        self.loss_nan_step: int | None = None  # first non-finite logged loss
        self.grad_nan_step: int | None = None  # first non-finite logged grad norm
        self._epoch: list[tuple[float, float | None]] = []

    def _loss(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        if self.loss_nan_step is None and not math.isfinite(value):
            self.loss_nan_step = step

    def _grad(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        if self.grad_nan_step is None and not math.isfinite(value):
            self.grad_nan_step = step

    def step(self, step: int, loss: float, gnorm: float, lr: float, acc: float | None) -> None:
        """One optimizer step's values."""
        if self.style == "hf":
            self._loss("train/loss", loss, step)
            self._grad("train/grad_norm", gnorm, step)
            self.writer.add_scalar("train/learning_rate", lr, step)
            if acc is not None:
                self.writer.add_scalar("train/accuracy", acc, step)
        elif self.style == "lightning":
            if step % LIGHTNING_EVERY == 0:
                self._loss("train_loss_step", loss, step)
                self._grad("grad_2.0_norm_total_step", gnorm, step)
                self.writer.add_scalar(f"lr-{self.optimizer}", lr, step)
                if acc is not None:
                    self.writer.add_scalar("train_acc_step", acc, step)
        else:
            self._epoch.append((loss, acc))
            self._lr = lr

    def end_epoch(self, epoch: int) -> None:
        """Keras style: write the epoch's mean loss (and accuracy) and its LR."""
        if self.style != "keras" or not self._epoch:
            return
        losses = [v for v, _ in self._epoch]
        self._loss("epoch_loss", sum(losses) / len(losses), epoch)
        self.writer.add_scalar("epoch_learning_rate", self._lr, epoch)
        accs = [a for _, a in self._epoch if a is not None]
        if accs:
            self.writer.add_scalar("epoch_accuracy", sum(accs) / len(accs), epoch)
        self._epoch = []

    def evaluate(self, step: int, epoch: int, loss: float) -> None:
        """A full-set loss (hf/lightning: every 50 steps; keras: every epoch)."""
        if self.style == "hf":
            self.writer.add_scalar("eval/loss", loss, step)
        elif self.style == "lightning":
            self.writer.add_scalar("val_loss", loss, step)
        else:
            self.val_writer.add_scalar("epoch_loss", loss, epoch)

    def close(self, hp: dict, final: float) -> None:
        """Write the hyperparameters (not for keras) and close the files."""
        metric = {"hparam/final_loss": final if math.isfinite(final) else 1e9}
        if self.style == "hf":
            self.writer.add_hparams(hp, metric)
        elif self.style == "lightning":
            for summary in hparams_summary(hp, metric):
                self.writer.file_writer.add_summary(summary)
        self.writer.close()
        if self.val_writer is not None:
            self.val_writer.close()


def train_run(sweep: Sweep, lr: float, out_dir: str, data: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Train one run, write its event files, and return its outcome (no label yet)."""
    torch.manual_seed(sweep.seed)
    x, y = data
    if sweep.model == "mlp":
        x = x.flatten(1)
    if sweep.train_size:
        x, y = x[: sweep.train_size], y[: sweep.train_size]
    n_train = len(x)
    model = make_model(sweep.model, sweep.task, n_in=x.shape[-1])
    opt = make_optimizer(sweep.optimizer, model.parameters(), lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(sweep.schedule, sweep.steps))
    initial = full_loss(model, x, y)
    gen = torch.Generator().manual_seed(sweep.seed + 99)
    log = TagLogger(sweep.writer, out_dir, sweep.optimizer.replace("SGDm", "SGD"))
    raw_bad = None  # first step with a non-finite loss or grad norm (the run stops soon after)
    clip = sweep.grad_clip if sweep.grad_clip is not None else math.inf
    per_epoch = max(1, n_train // sweep.batch_size)
    order = None
    for step in range(sweep.steps):
        epoch, k = divmod(step, per_epoch)
        if sweep.writer == "keras":  # epochs: each sample once per epoch
            if k == 0:
                order = torch.randperm(n_train, generator=gen)
            idx = order[k * sweep.batch_size : (k + 1) * sweep.batch_size]
        else:
            idx = torch.randint(0, n_train, (sweep.batch_size,), generator=gen)
        logits = model(x[idx])
        loss = loss_fn(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        lr_now = opt.param_groups[0]["lr"]
        loss_v = float(loss.detach())
        acc = float((logits.argmax(1) == y[idx]).float().mean()) if logits.dim() == 2 else None
        log.step(step, loss_v, gnorm, lr_now, acc)
        if raw_bad is None and not (math.isfinite(loss_v) and math.isfinite(gnorm)):
            raw_bad = step
        if raw_bad is not None and step - raw_bad >= NAN_TAIL_STEPS:
            log.end_epoch(epoch)
            break
        opt.step()
        sched.step()
        if sweep.writer == "keras" and k == per_epoch - 1:
            log.end_epoch(epoch)
            log.evaluate(step, epoch, full_loss(model, x, y))
        elif sweep.writer != "keras" and (step + 1) % 50 == 0:
            log.evaluate(step, epoch, full_loss(model, x, y))
    nan_step = log.loss_nan_step if log.loss_nan_step is not None else log.grad_nan_step
    final = math.inf if raw_bad is not None else full_loss(model, x, y)
    hp = {
        "lr": lr,
        "optimizer": "SGD" if sweep.optimizer.startswith("SGD") else sweep.optimizer,
        "momentum": 0.9 if sweep.optimizer == "SGDm" else 0.0,
        "batch_size": sweep.batch_size,
        "model_kind": "rnn" if sweep.family == "rnn" else sweep.model[:3],
        "batchnorm": sweep.model.endswith("_bn"),
        "schedule": sweep.schedule,
        "arch": sweep.model,
    }
    if sweep.task in CLASSES_OF_TASK:
        hp["num_classes"] = CLASSES_OF_TASK[sweep.task]
    elif sweep.family != "mlp":
        hp["num_classes"] = 10 if sweep.model.startswith(("cnn", "deepcnn")) else SEQ_CLASSES
    if sweep.grad_clip is not None:
        hp["max_grad_norm"] = sweep.grad_clip
    log.close(hp, final)
    return {"initial_loss": initial, "final_loss": final, "nan_step": nan_step}


def label_sweep(outcomes: dict[float, dict]) -> dict[float, tuple[str, float]]:
    """Label each LR of one sweep by outcome: {lr: (label, normalized gap)}."""
    finite = {lr: o for lr, o in outcomes.items() if math.isfinite(o["final_loss"])}
    best_lr = min(finite, key=lambda lr: finite[lr]["final_loss"])
    best = finite[best_lr]["final_loss"]
    start = finite[best_lr]["initial_loss"]
    # Label quality: when even the best LR learned (almost) nothing, the gaps compare noise.
    weak = start <= 0 or (start - best) / start < MIN_BEST_IMPROVEMENT
    labels = {}
    for lr, o in outcomes.items():
        if o["nan_step"] is not None or not math.isfinite(o["final_loss"]):
            labels[lr] = ("lr_too_high", math.inf)
            continue
        gap = (o["final_loss"] - best) / max(o["initial_loss"] - best, 1e-12)
        if weak:
            labels[lr] = ("weak_sweep", gap)
            continue
        gap = (o["final_loss"] - best) / max(o["initial_loss"] - best, 1e-12)
        if gap <= HEALTHY_GAP:
            labels[lr] = ("healthy", gap)
        elif gap >= BAD_GAP:
            labels[lr] = ("lr_too_high" if lr > best_lr else "lr_too_low", gap)
        else:
            labels[lr] = ("ambiguous", gap)
    return labels


def main() -> None:
    """Train every sweep (skipping runs already done) and write labels.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="output folder (git-ignored, e.g. bench_labeled)")
    p.add_argument(
        "--set",
        choices=sorted(SETS),
        default="main",
        help="main (statistics were looked at while writing the detectors), holdout, fresh "
        "(other tasks, shapes and writers) or fresh2 (other datasets, vanilla RNN, RMSprop)",
    )
    p.add_argument("--sweeps", default="", help="comma-separated sweep names (default: all of the set)")
    args = p.parse_args()
    torch.set_num_threads(1)
    chosen = [s for s in SETS[args.set] if not args.sweeps or s.name in args.sweeps.split(",")]
    digits, seqs = digits_data(), sequence_data(seed=0 if args.set == "main" else 1)
    tasks = {}
    if args.set == "fresh":
        tasks = {
            "recall": recall_data(seed=2),
            **{k: regression_data(k, seed=3) for k in ("reg_std", "reg_floor")},
        }
    elif args.set == "fresh2":
        tasks = {
            "sumsign": sumsign_data(seed=5),
            **{k: sklearn_data(k) for k in ("wine", "cancer", "iris", "diabetes")},
        }
    labels = {}
    t0 = time.perf_counter()
    for sweep in chosen:
        outcomes = {}
        for lr in sweep.grid:
            run_dir = os.path.join(args.out, sweep.name, f"lr_{lr:g}")
            done = os.path.join(run_dir, "done.json")
            if os.path.exists(done):
                with open(done) as f:
                    outcomes[lr] = json.load(f)
                continue
            os.makedirs(run_dir, exist_ok=True)
            data = tasks[sweep.task] if sweep.task else seqs if sweep.family == "rnn" else digits
            outcomes[lr] = train_run(sweep, lr, run_dir, data)
            with open(done, "w") as f:
                json.dump(outcomes[lr], f)
        for lr, (label, gap) in label_sweep(outcomes).items():
            o = outcomes[lr]
            labels[f"{sweep.name}/lr_{lr:g}"] = {
                "label": label,
                "gap": gap if math.isfinite(gap) else None,
                "lr": lr,
                "final_loss": o["final_loss"] if math.isfinite(o["final_loss"]) else None,
                "initial_loss": o["initial_loss"],
                "nan_step": o["nan_step"],
                "sweep": sweep.name,
                "family": sweep.family,
                "optimizer": sweep.optimizer,
                "model_kind": sweep.model,
            }
        print(
            f"{sweep.name}: "
            + " ".join(f"{lr:g}={labels[f'{sweep.name}/lr_{lr:g}']['label'][:7]}" for lr in sweep.grid)
            + f"  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    with open(os.path.join(args.out, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
    counts = {}
    for v in labels.values():
        counts[v["label"]] = counts.get(v["label"], 0) + 1
    print(f"{len(labels)} runs in {time.perf_counter() - t0:.0f} s: {counts}")


if __name__ == "__main__":
    main()
