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
  anything in between is ``ambiguous`` (not scored).

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

Example (190 runs, about 2 minutes on one core; the holdout set about 1 minute):
    python benchmarks/make_labeled_runs.py bench_labeled
    python benchmarks/make_labeled_runs.py bench_labeled_holdout --set holdout
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

HEALTHY_GAP = 0.15  # normalized final-loss gap at or below which a run is healthy
BAD_GAP = 0.35  # gap at or above which a run is clearly worse than the best
NAN_TAIL_STEPS = 10  # steps still logged after the first non-finite loss (then the run is stopped)

SGD_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
MOMENTUM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
ADAM_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Sweep:
    """One LR sweep: everything fixed but the learning rate."""

    name: str
    family: str  # "cnn" or "rnn": the hold-out split
    model: str  # "cnn", "cnn_bn", "rnn", "lstm", "gru"
    optimizer: str  # "SGD", "SGDm", "Adam"
    batch_size: int
    schedule: str  # "constant", "step", "cosine", "onecycle", "warmup"
    steps: int
    grad_clip: float | None = None
    seed: int = 1234  # model init and minibatch order

    @property
    def grid(self) -> tuple[float, ...]:
        return {"SGD": SGD_GRID, "SGDm": MOMENTUM_GRID, "Adam": ADAM_GRID}[self.optimizer]


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
SETS = {"main": SWEEPS, "holdout": HOLDOUT_SWEEPS}

SEQ_LEN = 20  # steps per synthetic sequence
SEQ_CLASSES = 4


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


class SeqClassifier(nn.Module):
    """A recurrent layer read out from its last hidden state."""

    def __init__(self, cell: str, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
            SEQ_CLASSES, hidden, batch_first=True
        )
        self.head = nn.Linear(hidden, SEQ_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def make_model(kind: str) -> nn.Module:
    """The small model of a sweep."""
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0))
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
    return SeqClassifier(kind)


def lr_factor(schedule: str, steps: int):
    """Multiplier of the base LR at each step, for `torch.optim.lr_scheduler.LambdaLR`."""
    warm = max(1, steps // 10)
    if schedule == "constant":
        return lambda s: 1.0
    if schedule == "step":
        return lambda s: 1.0 if s < steps * 0.6 else 0.1
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
    """SGD, SGD with momentum 0.9, or Adam."""
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr)
    if name == "SGDm":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
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


def train_run(sweep: Sweep, lr: float, out_dir: str, data: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Train one run, write its event files, and return its outcome (no label yet)."""
    torch.manual_seed(sweep.seed)
    x, y = data
    if sweep.model == "mlp":
        x = x.flatten(1)
    n_train = len(x)
    model = make_model(sweep.model)
    opt = make_optimizer(sweep.optimizer, model.parameters(), lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(sweep.schedule, sweep.steps))
    initial = full_loss(model, x, y)
    gen = torch.Generator().manual_seed(sweep.seed + 99)
    writer = SummaryWriter(out_dir)
    nan_step = None  # first non-finite loss, else first non-finite grad norm (see nan_loss)
    loss_nan_step = grad_nan_step = None
    clip = sweep.grad_clip if sweep.grad_clip is not None else math.inf
    for step in range(sweep.steps):
        idx = torch.randint(0, n_train, (sweep.batch_size,), generator=gen)
        logits = model(x[idx])
        loss = loss_fn(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        lr_now = opt.param_groups[0]["lr"]
        loss_v = float(loss.detach())
        acc = float((logits.argmax(1) == y[idx]).float().mean()) if logits.dim() == 2 else None
        writer.add_scalar("train/loss", loss_v, step)
        writer.add_scalar("train/grad_norm", gnorm, step)
        writer.add_scalar("train/learning_rate", lr_now, step)
        if acc is not None:
            writer.add_scalar("train/accuracy", acc, step)
        if loss_nan_step is None and not math.isfinite(loss_v):
            loss_nan_step = step
        if grad_nan_step is None and not math.isfinite(gnorm):
            grad_nan_step = step
        first_bad = min(s for s in (loss_nan_step, grad_nan_step, math.inf) if s is not None)
        if step - first_bad >= NAN_TAIL_STEPS:
            break
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            writer.add_scalar("eval/loss", full_loss(model, x, y), step)
    nan_step = loss_nan_step if loss_nan_step is not None else grad_nan_step
    final = math.inf if nan_step is not None else full_loss(model, x, y)
    hp = {
        "lr": lr,
        "optimizer": "SGD" if sweep.optimizer.startswith("SGD") else sweep.optimizer,
        "momentum": 0.9 if sweep.optimizer == "SGDm" else 0.0,
        "batch_size": sweep.batch_size,
        "model_kind": "rnn" if sweep.family == "rnn" else sweep.model[:3],
        "batchnorm": sweep.model == "cnn_bn",
        "schedule": sweep.schedule,
        "arch": sweep.model,
    }
    if sweep.model != "mlp":
        hp["num_classes"] = 10 if sweep.model.startswith("cnn") else SEQ_CLASSES
    if sweep.grad_clip is not None:
        hp["max_grad_norm"] = sweep.grad_clip
    writer.add_hparams(hp, {"hparam/final_loss": final if math.isfinite(final) else 1e9})
    writer.close()
    return {"initial_loss": initial, "final_loss": final, "nan_step": nan_step}


def label_sweep(outcomes: dict[float, dict]) -> dict[float, tuple[str, float]]:
    """Label each LR of one sweep by outcome: {lr: (label, normalized gap)}."""
    finite = {lr: o for lr, o in outcomes.items() if math.isfinite(o["final_loss"])}
    best_lr = min(finite, key=lambda lr: finite[lr]["final_loss"])
    best = finite[best_lr]["final_loss"]
    labels = {}
    for lr, o in outcomes.items():
        if o["nan_step"] is not None or not math.isfinite(o["final_loss"]):
            labels[lr] = ("lr_too_high", math.inf)
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
        help="main (statistics were looked at while writing the detectors) or holdout",
    )
    p.add_argument("--sweeps", default="", help="comma-separated sweep names (default: all of the set)")
    args = p.parse_args()
    torch.set_num_threads(1)
    chosen = [s for s in SETS[args.set] if not args.sweeps or s.name in args.sweeps.split(",")]
    digits, seqs = digits_data(), sequence_data(seed=0 if args.set == "main" else 1)
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
            data = seqs if sweep.family == "rnn" else digits
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
