"""Threshold selection and the common score scale, on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.calibration import (
    ScoreScale,
    ScoreScaleLayer,
    good_only_threshold,
    select_threshold,
    trade_off,
)


def test_threshold_catches_all_defects_with_fewest_false_rejects():
    scores = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    t = select_threshold(scores, labels, target_recall=1.0)
    # the lowest defect is 0.6; the next lower score is 0.3 -> midway 0.45
    assert t.value == pytest.approx(0.45)
    assert t.recall == 1.0 and t.false_reject_rate == pytest.approx(0.25)
    assert t.method == "target_recall"


def test_lower_target_allows_misses_to_cut_false_rejects():
    scores = np.array([0.1, 0.2, 0.55, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    strict = select_threshold(scores, labels, 1.0)
    loose = select_threshold(scores, labels, 0.9)  # 10 defects: one may be missed
    assert strict.false_reject_rate == pytest.approx(1 / 3)
    assert loose.recall == pytest.approx(0.9) and loose.false_reject_rate == 0.0
    assert loose.value == pytest.approx((0.6 + 0.55) / 2)


def test_threshold_needs_defects():
    with pytest.raises(ValueError):
        select_threshold(np.array([0.1, 0.2]), np.array([0, 0]))


def test_good_only_threshold_uses_quantile_and_sigma_rule():
    good = np.linspace(0, 1, 101)
    t = good_only_threshold(good, target_frr=0.05)
    assert t.value >= np.quantile(good, 0.95)
    assert t.method == "good_quantile" and t.recall is None
    assert t.false_reject_rate <= 0.05


def test_score_scale_puts_threshold_at_half_and_is_monotone():
    scale = ScoreScale.fit(2.0, np.array([0.5, 1.0, 3.0, 7.0]))
    raw = np.linspace(-1, 10, 200)
    mapped = scale.apply(raw)
    assert scale.apply(np.array([2.0]))[0] == pytest.approx(0.5)
    assert np.all(np.diff(mapped) >= 0) and mapped.min() == 0 and mapped.max() == 1
    layer = ScoreScaleLayer(scale)
    assert np.allclose(layer(torch.tensor(raw, dtype=torch.float32)).numpy(), mapped, atol=1e-6)


def test_bounded_scale_for_probabilities():
    scale = ScoreScale.fit(0.2, np.array([0.1]), bounded=True)
    mapped = scale.apply(np.array([0.0, 0.1, 0.2, 0.6, 1.0]))
    assert mapped == pytest.approx([0, 0.25, 0.5, 0.75, 1])


def test_false_reject_cap_moves_threshold_and_says_so():
    # 10 good spread over 0..0.9, defects mostly high but one at 0.05: catching it would
    # reject every good image, so the 20 % cap decides.
    good = np.linspace(0.0, 0.9, 10)
    defect = np.array([0.05, 0.95, 0.96, 0.97, 0.98])
    scores, labels = np.r_[good, defect], np.r_[np.zeros(10), np.ones(5)].astype(int)
    uncapped = select_threshold(scores, labels, 1.0)
    assert uncapped.method == "target_recall" and uncapped.false_reject_rate == pytest.approx(0.9)
    capped = select_threshold(scores, labels, 1.0, max_frr=0.2)
    assert capped.method == "max_frr"
    assert capped.false_reject_rate == pytest.approx(0.2)  # the two highest good fail
    assert capped.value == pytest.approx((0.7 + 0.8) / 2)
    assert capped.recall == pytest.approx(0.8)
    lo, hi = capped.recall_ci
    assert lo < 0.8 < hi and lo >= 0 and hi <= 1


def test_trade_off_lists_recall_and_false_reject_budgets():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 100)]
    labels = np.r_[np.zeros(200), np.ones(100)].astype(int)
    rows = trade_off(scores, labels)
    by_recall = [r for r in rows if r["method"] == "target_recall"]
    by_frr = [r for r in rows if r["method"] == "max_frr"]
    assert [r["target"] for r in by_recall] == [0.90, 0.95, 0.99]
    assert all(r["recall"] >= r["target"] for r in by_recall)
    assert all(r["false_reject_rate"] <= r["target"] for r in by_frr)
    # more recall costs more false rejects; a bigger budget buys more recall
    assert by_recall[0]["false_reject_rate"] <= by_recall[2]["false_reject_rate"]
    assert by_frr[0]["recall"] <= by_frr[2]["recall"]
