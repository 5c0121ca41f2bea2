"""The rank tests the loss-shape detectors share (`stats`): a real change vs heavy-tailed noise."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.stats import (
    climb_p_value,
    fall_p_value,
    initial_level,
    noise_grew_p_value,
    rebound_p_value,
)

FLAT = [curves.flat_regression(dof=dof, seed=seed) for dof in (4, 16) for seed in range(3)]


@pytest.mark.parametrize("values", FLAT)
def test_steady_heavy_tailed_noise_is_never_significant(values):
    noise = 0.35 * 2.7
    assert fall_p_value(values, float(np.median(values[:5])), noise) >= 0.01
    assert climb_p_value(values) >= 0.01
    assert rebound_p_value(values) >= 0.01
    assert noise_grew_p_value(values[:150] - np.median(values[:150]), values[150:]) >= 0.01


def test_real_changes_are_significant():
    decay = curves.noisy(curves.decay(), 0.2)
    assert fall_p_value(decay, 2.3, 0.1) < 0.01
    climb = curves.noisy(np.r_[np.full(150, 1.0), np.full(150, 2.0)], 0.2)
    assert climb_p_value(climb) < 0.01
    rebound = curves.noisy(np.r_[np.linspace(2.3, 0.5, 150), np.linspace(0.5, 2.0, 150)], 0.1)
    assert rebound_p_value(rebound) < 0.01
    calm_then_wild = np.r_[curves.noisy(np.ones(150), 0.05), curves.noisy(np.ones(150), 0.5)]
    assert noise_grew_p_value(calm_then_wild[:150] - 1.0, calm_then_wild[150:]) < 0.01


def test_one_point_drop_counts_only_beyond_any_noise_tail():
    rest = curves.noisy(np.full(99, 1.0), 0.02)
    assert fall_p_value(np.r_[2.3, rest], 2.3, 0.02) == 0.0  # 65 sigmas: a drop on the first update
    assert fall_p_value(np.r_[1.1, rest], 1.1, 0.02) > 0.01  # 5 sigmas: could be a noisy first point


@pytest.mark.parametrize(
    ("head", "noise", "expected"),
    [
        ([2.3, 1.2, 1.1, 1.0, 1.05], 0.05, 2.3),  # first update dropped it: keep the first point
        ([2.3, 1.2, 1.1, 1.0, 1.05], 1.0, 1.1),  # ... unless the noise is that large: the median
        ([1.0, 2.0, 2.1, 1.9, 2.2], 0.05, 1.0),  # blew up right after the first point
        ([2.0, 1.9, 2.1, 2.05, 1.95], 0.05, 2.0),  # ordinary noise: the median
    ],
)
def test_initial_level(head, noise, expected):
    values = np.r_[head, np.ones(50)]
    assert initial_level(values, noise) == pytest.approx(expected)
