"""Generate lrdoctor's sample runs: real CPU training of tiny models, logged with our Collector.

Usage::

    python sample_runs/make_samples.py                 # all runs into sample_runs/
    python sample_runs/make_samples.py --out /tmp/s --only cnn_healthy cnn_nan

Each run is one symptom made real by its learning rate (or batch size, or clipping); after
training, the run is read back with `lrdoctor.analyzers.read_logdir` and its outcome checked
(e.g. the too-high run ends far worse than the healthy one), so a sample that stops showing its
symptom fails here instead of misleading a test. `expected.json` records what each run is by
construction: ``{run: {"verdict": ..., "codes": [...], "facts": {...}}}`` where facts are
measured on the written run (final losses, first NaN step, suggested LR).

Data: CNNs learn sklearn's ``load_digits`` (1797 8x8 images, 10 classes; 1500 train / 297 val);
RNNs predict the next value of noisy sine waves. Seeds are fixed; one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from lrdoctor.analyzers import read_logdir
from lrdoctor.collectors import Collector, lr_range_test

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
CNN_EPOCHS = 25
BATCH_EPOCHS = 20
RNN_STEPS = 500
RNN_EPOCH_STEPS = 32  # the RNN loop checks its loss for NaN every this many steps, like an epoch end
HEALTHY_CNN_LR = 0.05


# -- data and models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor


def digits() -> tuple[Split, Split]:
    """sklearn digits as 1x8x8 float images in [0, 1]: (train 1500, val 297), fixed shuffle."""
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    return Split(x[perm[:1500]], y[perm[:1500]]), Split(x[perm[1500:]], y[perm[1500:]])


def sine_waves(n: int, length: int, seed: int) -> Split:
    """Noisy sine waves of random frequency and phase; target: the next value at every step."""
    g = torch.Generator().manual_seed(seed)
    freq = 0.1 + 0.4 * torch.rand(n, 1, generator=g)
    phase = 2 * torch.pi * torch.rand(n, 1, generator=g)
    t = torch.arange(length + 1, dtype=torch.float32)
    s = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, length + 1, generator=g)
    return Split(s[:, :-1, None], s[:, 1:, None])


def small_cnn() -> nn.Module:
    """Two conv blocks and a linear classifier (~5k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


class SineRNN(nn.Module):
    """A vanilla tanh RNN reading a wave and predicting its next value at every step."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def epochs_of(data: Split, batch_size: int, epochs: int, seed: int) -> Iterator[Iterator[tuple]]:
    """``epochs`` shuffled passes over ``data`` in full batches (the last partial one dropped)."""
    g = torch.Generator().manual_seed(seed)
    n = len(data.x)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        yield (
            (data.x[perm[i : i + batch_size]], data.y[perm[i : i + batch_size]])
            for i in range(0, n - batch_size + 1, batch_size)
        )


# -- one training run ----------------------------------------------------------------------------


def train(
    logdir: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable,
    epochs: Iterator[Iterator[tuple]],
    *,
    batch_size: int,
    val: Split,
    classify: bool,
    clip: float | None = None,
    info: dict | None = None,
) -> None:
    """A plain training loop with the Collector, as a user would write it.

    After each epoch: validation loss (and accuracy), and a NaN check that stops training by an
    exception, like many real loops; the Collector then writes everything up to that point.
    """
    shutil.rmtree(logdir, ignore_errors=True)  # a rerun replaces the run instead of appending to it
    try:
        with Collector(
            logdir,
            model=model,
            optimizer=optimizer,
            batch_size=batch_size,
            flush_every=50,
            module_grad_norm_every=10,
            info=info,
        ) as col:
            for batches in epochs:
                model.train()
                for x, y in batches:
                    optimizer.zero_grad()
                    out = model(x)
                    loss = loss_fn(out, y)
                    loss.backward()
                    if clip is not None:
                        col.clip_grad_norm_(clip)
                    optimizer.step()
                    if classify:
                        col.step(loss, accuracy=(out.argmax(1) == y).float().mean())
                    else:
                        col.step(loss)
                model.eval()
                with torch.no_grad():
                    out = model(val.x)
                    if classify:
                        col.log(
                            val_loss=loss_fn(out, val.y), val_accuracy=(out.argmax(1) == val.y).float().mean()
                        )
                    else:
                        col.log(val_loss=loss_fn(out, val.y))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} after step {col.steps - 1}")
    except FloatingPointError as e:
        print(f"  {os.path.basename(logdir)}: training stopped: {e}")


def cnn_run(logdir: str, lr: float, *, batch_size: int = 64, epochs: int = CNN_EPOCHS, note: str) -> None:
    train_set, val_set = digits()
    torch.manual_seed(SEED)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train(
        logdir,
        model,
        opt,
        nn.functional.cross_entropy,
        epochs_of(train_set, batch_size, epochs, SEED),
        batch_size=batch_size,
        val=val_set,
        classify=True,
        info={"dataset": "sklearn digits 8x8", "note": note},
    )


def rnn_run(logdir: str, lr: float, clip: float | None, *, note: str) -> None:
    train_set, val_set = sine_waves(1024, 40, seed=1), sine_waves(256, 40, seed=2)
    torch.manual_seed(SEED)
    model = SineRNN()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train(
        logdir,
        model,
        opt,
        nn.functional.mse_loss,
        epochs_of(train_set, 32, RNN_STEPS // RNN_EPOCH_STEPS, SEED),
        batch_size=32,
        val=val_set,
        classify=False,
        clip=clip,
        info={"dataset": "noisy sine waves, 40 steps", "note": note},
    )


# -- the samples -----------------------------------------------------------------------------------


def _values(run, signal: str) -> np.ndarray:
    series = run.signal(signal)
    if series is None:
        raise AssertionError(f"{run.name}: no {signal} written")
    return series.values


def _tail_mean(values: np.ndarray, n: int = 50) -> float:
    return float(np.mean(values[-n:]))


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"sample no longer shows its symptom: {what}")


def make_cnn_healthy(out: str) -> dict:
    cnn_run(os.path.join(out, "cnn_healthy"), HEALTHY_CNN_LR, note="SGD momentum 0.9, LR 0.05: a good LR")
    loss = _values(read_logdir(out)["cnn_healthy"], "loss")
    _check(np.isfinite(loss).all() and _tail_mean(loss) < 0.05 * loss[0], "healthy CNN converges")
    return {
        "verdict": "healthy",
        "codes": [],
        "facts": {"first_loss": float(loss[0]), "final_loss": _tail_mean(loss)},
    }


def make_cnn_lr_too_high(out: str, healthy_final: float) -> dict:
    cnn_run(os.path.join(out, "cnn_lr_too_high"), 0.3, note="LR 0.3, 6x the healthy 0.05: loss bounces")
    loss = _values(read_logdir(out)["cnn_lr_too_high"], "loss")
    final = _tail_mean(loss)
    _check(np.isfinite(loss).all(), "too-high CNN stays finite")
    _check(
        final > 10 * healthy_final, f"too-high CNN ends far worse than healthy ({final} vs {healthy_final})"
    )
    return {
        "verdict": "lr_too_high",
        "codes": ["loss_oscillating"],
        "facts": {"final_loss": final, "healthy_final_loss": healthy_final, "lr": 0.3},
    }


def make_cnn_nan(out: str) -> dict:
    cnn_run(os.path.join(out, "cnn_nan"), 1.0, note="LR 1.0, 20x the healthy 0.05: weights blow up to NaN")
    run = read_logdir(out)["cnn_nan"]
    loss = _values(run, "loss")
    steps = run.signal("loss").steps
    bad = ~np.isfinite(loss)
    _check(bool(bad.any()), "NaN CNN reaches NaN")
    first_nan = int(steps[np.argmax(bad)])
    # The gradient norm may overflow a step before the loss does: the first non-finite value of any tag.
    _check(
        run.hparams.get("first_nonfinite_step", first_nan + 1) <= first_nan,
        "collector recorded the first non-finite step",
    )
    return {
        "verdict": "lr_too_high",
        "codes": ["nan_loss"],
        "facts": {"first_nan_step": first_nan, "lr": 1.0},
    }


def make_cnn_lr_too_low(out: str) -> dict:
    cnn_run(os.path.join(out, "cnn_lr_too_low"), 0.0005, note="LR 0.0005, 1/100 of the healthy 0.05")
    loss = _values(read_logdir(out)["cnn_lr_too_low"], "loss")
    first, final = float(np.mean(loss[:20])), _tail_mean(loss)
    _check(final < first, "too-low CNN decreases")
    _check(final > 0.8 * first, f"too-low CNN is far from converged ({final} vs {first} at start)")
    return {
        "verdict": "lr_too_low",
        "codes": ["slow_decrease"],
        "facts": {"first_loss": first, "final_loss": final},
    }


def make_rnn_exploding_noclip(out: str) -> dict:
    rnn_run(os.path.join(out, "rnn_exploding_noclip"), 0.4, None, note="vanilla RNN, SGD 0.4, no clipping")
    run = read_logdir(out)["rnn_exploding_noclip"]
    norms = _values(run, "grad_norm")
    start = float(np.median(norms[:10]))
    peak = float(np.nanmax(np.where(np.isfinite(norms), norms, np.nan)))
    _check(peak > 1000 * start, f"RNN gradients explode (peak {peak} vs {start} at start)")
    loss = _values(run, "loss")
    bad = ~np.isfinite(loss)
    first_nan = int(run.signal("loss").steps[np.argmax(bad)]) if bad.any() else None
    return {
        "verdict": "lr_too_high",
        "codes": ["exploding_gradients", "no_grad_clipping"]
        + (["nan_loss"] if first_nan is not None else []),
        "facts": {"start_grad_norm": start, "peak_finite_grad_norm": peak, "first_nan_step": first_nan},
    }


def make_rnn_clipped(out: str) -> dict:
    rnn_run(os.path.join(out, "rnn_clipped"), 0.4, 1.0, note="same RNN and LR, gradients clipped at norm 1.0")
    run = read_logdir(out)["rnn_clipped"]
    loss = _values(run, "loss")
    _check(
        np.isfinite(loss).all() and _tail_mean(loss) < 0.3 * float(np.mean(loss[:20])), "clipped RNN learns"
    )
    _check(run.hparams.get("grad_clip") == 1.0, "grad_clip recorded")
    return {"verdict": "healthy", "codes": [], "facts": {"final_loss": _tail_mean(loss), "grad_clip": 1.0}}


def make_batch_pair(out: str) -> dict[str, dict]:
    note = f"SGD momentum 0.9, LR {HEALTHY_CNN_LR} for both batch sizes, {BATCH_EPOCHS} epochs each"
    cnn_run(os.path.join(out, "batch_32"), HEALTHY_CNN_LR, batch_size=32, epochs=BATCH_EPOCHS, note=note)
    cnn_run(
        os.path.join(out, "batch_256_unscaled"),
        HEALTHY_CNN_LR,
        batch_size=256,
        epochs=BATCH_EPOCHS,
        note=note,
    )
    runs = read_logdir(out)
    small, big = (
        _tail_mean(_values(runs["batch_32"], "loss"), 5),
        _tail_mean(_values(runs["batch_256_unscaled"], "loss"), 5),
    )
    _check(big > 10 * small, f"batch 256 with the unscaled LR ends far worse ({big} vs {small})")
    return {
        "batch_32": {"verdict": "healthy", "codes": [], "facts": {"final_loss": small, "batch_size": 32}},
        "batch_256_unscaled": {
            "verdict": "lr_too_low",
            "codes": ["batch_lr_scaling"],
            "facts": {
                "final_loss": big,
                "batch_size": 256,
                "peer": "batch_32",
                "scaled_lr": HEALTHY_CNN_LR * 8,
            },
        },
    }


def make_lr_range_test(out: str) -> dict:
    train_set, _ = digits()
    torch.manual_seed(SEED)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=HEALTHY_CNN_LR, momentum=0.9)
    batches = [b for epoch in epochs_of(train_set, 64, 10, SEED) for b in epoch]
    shutil.rmtree(os.path.join(out, "lr_range_test"), ignore_errors=True)
    result = lr_range_test(
        model,
        opt,
        nn.functional.cross_entropy,
        batches,
        start_lr=1e-4,
        end_lr=10.0,
        num_steps=200,
        logdir=os.path.join(out, "lr_range_test"),
        batch_size=64,
    )
    run = read_logdir(out)["lr_range_test"]
    _check(run.hparams.get("run_kind") == "lr_range_test", "range test run kind")
    _check(1e-3 <= result.suggested_lr <= 1.0, f"plausible suggestion ({result.suggested_lr})")
    return {
        "verdict": "inconclusive",
        "codes": [],
        "run_kind": "lr_range_test",
        "facts": {
            "suggested_lr": result.suggested_lr,
            "min_loss_lr": result.min_loss_lr,
            "diverged_lr": result.diverged_lr,
        },
    }


ALL = (
    "cnn_healthy",
    "cnn_lr_too_high",
    "cnn_nan",
    "cnn_lr_too_low",
    "rnn_exploding_noclip",
    "rnn_clipped",
    "batch_32",
    "batch_256_unscaled",
    "lr_range_test",
)


def make(out: str, only: tuple[str, ...] = ALL) -> dict[str, dict]:
    """Write the runs named in ``only`` (fresh) into ``out`` and return their expected entries."""
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        raise ValueError(f"unknown sample run(s) {', '.join(unknown)}; known: {', '.join(ALL)}")
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    expected: dict[str, dict] = {}
    for name in only:
        if name in expected:
            continue
        t0 = time.perf_counter()
        if name == "cnn_lr_too_high":
            if "cnn_healthy" not in expected:
                expected["cnn_healthy"] = make_cnn_healthy(out)
            expected[name] = make_cnn_lr_too_high(out, expected["cnn_healthy"]["facts"]["final_loss"])
        elif name in ("batch_32", "batch_256_unscaled"):
            expected.update(make_batch_pair(out))
        else:
            expected[name] = globals()[f"make_{name}"](out)
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE, help="output logdir (default: this folder)")
    parser.add_argument(
        "--only", nargs="+", default=list(ALL), choices=ALL, metavar="RUN", help="runs to make"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    expected = make(args.out, tuple(args.only))
    path = os.path.join(args.out, "expected.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
    combined = {**previous, **expected}
    merged = {name: combined[name] for name in ALL if name in combined}  # in ALL's order
    with open(path, "w") as f:
        json.dump(merged, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"wrote {len(expected)} runs and {path} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
