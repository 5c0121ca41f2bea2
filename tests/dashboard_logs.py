"""Real event files for the dashboard tests, written with torch's SummaryWriter.

Curves are synthetic but written by the real writer with our tag convention (`lrdoctor/...`)
and our run description (the collector's own `run_info_event`), so the real reader and
analyzers see exactly what a collector would have written.
"""

from __future__ import annotations

import math
import os
import random

import torch
from torch.utils.tensorboard import SummaryWriter

from lrdoctor.collectors.hparams import run_info_event

torch.set_num_threads(1)


def write_run(
    logdir: str | os.PathLike,
    name: str,
    loss: list[float],
    *,
    lr: list[float] | float = 0.01,
    grad_norm: list[float] | None = None,
    info: dict | None = None,
    start: int = 0,
) -> str:
    """Write one run: loss (and LR, grad norm) per step from ``start``; returns the run folder."""
    path = os.path.join(os.fspath(logdir), name)
    with SummaryWriter(path, flush_secs=1) as w:
        if info is not None:
            w._get_file_writer().add_event(run_info_event(info, 0))
        for i, value in enumerate(loss):
            step = start + i
            w.add_scalar("lrdoctor/loss", value, step)
            w.add_scalar("lrdoctor/lr/pg0", lr[i] if isinstance(lr, list) else lr, step)
            if grad_norm is not None:
                w.add_scalar("lrdoctor/grad_norm", grad_norm[i], step)
    return path


def healthy(n: int = 400, seed: int = 0) -> tuple[list[float], list[float]]:
    """(loss, grad norm): exponential decay to a floor with minibatch noise."""
    rng = random.Random(seed)
    loss = [0.1 + 2.2 * math.exp(-i / 80) + 0.03 * rng.gauss(0, 1) for i in range(n)]
    grads = [1.0 + 2.0 * math.exp(-i / 60) + 0.1 * abs(rng.gauss(0, 1)) for i in range(n)]
    return loss, grads


def nan_at(k: int, n: int = 300, seed: int = 1) -> tuple[list[float], list[float]]:
    """(loss, grad norm): the loss climbs, then is NaN from step ``k`` on (LR far too high)."""
    rng = random.Random(seed)
    loss = [2.3 * (1.0 + 0.02 * i) * (1 + 0.2 * rng.random()) if i < k else float("nan") for i in range(n)]
    grads = [5.0 * 1.05 ** min(i, k) if i < k else float("inf") for i in range(n)]
    return loss, grads


def make_logdir(root: str | os.PathLike) -> str:
    """A small logdir: a healthy run, a NaN run, an LR range test and a corrupt file."""
    root = os.fspath(root)
    loss, grads = healthy()
    write_run(
        root,
        "healthy",
        loss,
        lr=0.01,
        grad_norm=grads,
        info={"optimizer": "SGD", "lr": 0.01, "batch_size": 64, "model_kind": "cnn", "momentum": 0.9},
    )
    loss, grads = nan_at(120)
    write_run(
        root,
        "diverged",
        loss,
        lr=1.0,
        grad_norm=grads,
        info={"optimizer": "SGD", "lr": 1.0, "batch_size": 128, "model_kind": "cnn", "momentum": 0.9},
    )
    n = 100
    lrs = [1e-6 * 10 ** (7 * i / (n - 1)) for i in range(n)]  # 1e-6 .. 10, log-spaced
    rt_loss = [2.3 - 1.5 * (math.log10(x) + 6) / 5 if x < 0.1 else 0.8 * (x / 0.1) ** 1.5 for x in lrs]
    write_run(
        root,
        "range_test",
        rt_loss,
        lr=lrs,
        info={
            "optimizer": "Adam",
            "lr": 1e-6,
            "batch_size": 32,
            "run_kind": "lr_range_test",
            "suggested_lr": 0.01,
        },
    )
    bad = os.path.join(root, "broken")
    os.makedirs(bad)
    with open(os.path.join(bad, "events.out.tfevents.1700000000.host.1.0"), "wb") as f:
        f.write(b"\x18\x00\x00\x00\x00\x00\x00\x00this is not a tfrecord at all")
    return root
