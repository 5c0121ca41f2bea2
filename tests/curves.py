"""Synthetic training curves for analyzer tests (import as ``import curves``): inputs, not mocks.

Each builder returns a float64 array, one value per step, deterministic for a given seed.
`make_run` wraps arrays into a real reader `Run` (the same dataclasses the reader builds).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.analyzers.run import Run, Series
from lrdoctor.analyzers.tags import map_signals


def decay(n: int = 300, init: float = 2.3, floor: float = 0.05, rate: float = 8.0) -> np.ndarray:
    """Exponential decay from ``init`` to ``floor``: ``rate`` e-foldings over the run (healthy)."""
    t = np.arange(n) / n
    return floor + (init - floor) * np.exp(-rate * t)


def noisy(values: np.ndarray, rel: float = 0.1, seed: int = 0) -> np.ndarray:
    """Multiplicative lognormal minibatch noise of relative size ``rel``."""
    rng = np.random.default_rng(seed)
    return values * np.exp(rel * rng.standard_normal(len(values)))


def slow(n: int = 300, init: float = 2.3, total_drop: float = 0.02) -> np.ndarray:
    """A loss falling linearly by a fraction ``total_drop`` of ``init`` over the run (LR too low)."""
    return init * (1 - total_drop * np.arange(n) / n)


def oscillating(
    n: int = 300, init: float = 2.3, level: float = 1.2, amp: float = 0.8, seed: int = 0
) -> np.ndarray:
    """A fast drop to ``level``, then bounces of about +-``amp`` around it with no trend."""
    rng = np.random.default_rng(seed)
    base = level + (init - level) * np.exp(-20 * np.arange(n) / n)
    return np.maximum(base + amp * rng.standard_normal(n) * (np.arange(n) > n // 10), 0.05)


def diverging(n: int = 300, init: float = 2.3, start: int = 150, growth: float = 0.03) -> np.ndarray:
    """Healthy decay until ``start``, then exponential growth (``growth`` per step)."""
    v = decay(n, init)
    k = np.arange(n - start)
    v[start:] = v[start] * np.exp(growth * k)
    return v


def floored(n: int = 300, init: float = 2.7, floor: float = 1.0, rate: float = 5.0) -> np.ndarray:
    """A healthy regression loss: exponential decay to a non-zero ``floor`` (noise in the targets)."""
    return decay(n, init, floor, rate)


def heavy_noise(values: np.ndarray, dof: int = 16, seed: int = 0) -> np.ndarray:
    """Minibatch noise of an MSE on noisy targets: each point x chi-square(dof) / dof (heavy right tail)."""
    rng = np.random.default_rng(seed)
    return values * rng.chisquare(dof, len(values)) / dof


def flat_regression(n: int = 300, level: float = 2.7, dof: int = 8, seed: int = 0) -> np.ndarray:
    """An MSE loss that does not move (LR far too low) under heavy-tailed minibatch noise."""
    return heavy_noise(np.full(n, level), dof, seed)


def with_nan(values: np.ndarray, step: int) -> np.ndarray:
    """A copy with NaN from index ``step`` on."""
    v = values.copy()
    v[step:] = np.nan
    return v


def stuck(n: int = 300, chance: float = np.log(10), spike: float = 40.0, seed: int = 0) -> np.ndarray:
    """A loss that spikes to ``spike`` x chance at step 2 and then sits at chance (LR too high)."""
    v = noisy(np.full(n, chance), 0.005, seed)
    v[2] = chance * spike
    v[3] = chance * spike / 4
    return v


def series(tag: str, values: np.ndarray, steps: np.ndarray | None = None) -> Series:
    """A reader `Series` of ``values`` at ``steps`` (default 0..n-1)."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values), dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    return Series(tag, steps, values.copy(), np.arange(len(values), dtype=np.float64) + 1.7e9)


def make_run(
    name: str = "run", *, hparams: dict | None = None, steps: np.ndarray | None = None, **signals: np.ndarray
) -> Run:
    """A `Run` with one series per keyword (``loss=..., grad_norm=..., lr=..., accuracy=...``).

    Tags follow the collector convention (``lrdoctor/loss``, ``lrdoctor/lr/pg0``...), mapped to
    signals by the reader's own `map_signals`.
    """
    tags = {"lr": "lrdoctor/lr/pg0"}
    scalars = {}
    for sig, values in signals.items():
        tag = tags.get(sig, f"lrdoctor/{sig}")
        scalars[tag] = series(tag, values, steps)
    return Run(
        name=name,
        path=f"/tmp/{name}",
        scalars=scalars,
        signals=map_signals(scalars),
        hparams=dict(hparams or {}),
    )
