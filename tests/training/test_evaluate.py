"""Pixel-level metrics on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import aupro


@pytest.fixture
def mask():
    m = np.zeros((40, 40), bool)
    m[5:8, 5:8] = True  # a small defect
    m[12:30, 12:30] = True  # a large one
    return m


def test_aupro_of_a_perfect_map_is_one(mask):
    assert aupro([mask.astype(float)], [mask]) == pytest.approx(1.0)


def test_aupro_of_noise_is_low(mask):
    noise = np.random.default_rng(0).random(mask.shape)
    assert 0.05 < aupro([noise], [mask]) < 0.3


def test_each_region_counts_equally(mask):
    small_only = np.zeros(mask.shape)
    small_only[5:8, 5:8] = 1.0  # finds the 9-pixel defect, misses the 324-pixel one
    large_only = np.zeros(mask.shape)
    large_only[12:30, 12:30] = 1.0
    assert aupro([small_only], [mask]) == pytest.approx(aupro([large_only], [mask]))
    assert aupro([small_only], [mask]) < 0.8


def test_no_regions_gives_nan():
    assert np.isnan(aupro([np.zeros((5, 5))], [np.zeros((5, 5), bool)]))
