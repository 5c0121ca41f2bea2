"""Fixtures of the collector tests: tiny real models and data (CPU, one thread)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def _batches(n: int, batch_size: int = 16, seed: int = 0) -> Batches:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch_size, 1, 8, 8, generator=g), torch.randint(0, 10, (batch_size,), generator=g))
        for _ in range(n)
    ]


@pytest.fixture
def make_model() -> Callable[[], nn.Module]:
    """Factory of a seeded conv + linear classifier on 1x8x8 inputs, 10 classes."""

    def make(seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return _tiny_cnn()

    return make


@pytest.fixture
def make_batches() -> Callable[..., Batches]:
    """Factory of ``n`` random (images 1x8x8, labels 0-9) batches, fixed by ``seed``."""
    return _batches
