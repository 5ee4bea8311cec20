"""Model selection rules of the training loop."""

from __future__ import annotations

import numpy as np

from training.loops import _improves, _selection_key, ranking_metrics


def test_better_ranking_always_wins():
    assert _improves((0.9, 0.95, -0.5), (0.8, 0.99, -0.1))
    assert not _improves((0.8, 0.99, -0.01), (0.9, 0.95, -0.5))


def test_equal_ranking_needs_a_clearly_lower_loss():
    best = (1.0, 1.0, -0.100)
    assert not _improves((1.0, 1.0, -0.095), best)  # 5 % lower: noise
    assert _improves((1.0, 1.0, -0.080), best)  # 20 % lower: progress


def test_selection_key_handles_single_class_validation():
    metrics = ranking_metrics(np.array([0.1, 0.2]), np.array([0, 0]))
    assert np.isnan(metrics["auroc"])
    assert _selection_key(metrics, 0.3) == (0.0, 0.0, -0.3)
