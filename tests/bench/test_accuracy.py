"""The accuracy benchmark's harness, end to end on generated flanges (small and fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import accuracy
from bench.accuracy_sets import BenchSet


@pytest.fixture(scope="module")
def flanges(tmp_path_factory):
    from training.synth import generate_dataset

    base = tmp_path_factory.mktemp("sets")
    generate_dataset(base / "flange", n_good=30, n_per_type=10, size=64, seed=3,
                     types=("scratch", "stain"))
    return BenchSet("flange", "generated", group_size=1, base=base)


def test_split_folders_hold_out_whole_parts(flanges, tmp_path):
    train, test = accuracy.split_folders(flanges, tmp_path)
    train_stems = {p.stem for p in train.rglob("*.jpg")}
    test_stems = {p.stem for p in test.rglob("*.jpg")}
    assert train_stems and test_stems and not train_stems & test_stems
    assert len(train_stems) + len(test_stems) == 50
    # masks follow their images to the same side
    for side in (train, test):
        for mask in side.glob("masks/*/*.png"):
            assert (side / "defect" / mask.parent.name / f"{mask.stem}.jpg").exists()


def test_operating_points_on_known_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.45, 0.7, 0.8, 0.9, 0.95])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    ops = accuracy.operating_points(scores, labels)
    assert ops["recall_at_threshold"] == pytest.approx(0.8)  # 0.45 passes
    assert ops["frr_at_threshold"] == pytest.approx(0.2)  # 0.6 fails
    assert ops["recall_at_frr_1"] == pytest.approx(0.8)  # above 0.6: 4 of 5 defects
    assert ops["frr_at_recall_95"] == pytest.approx(0.2)  # catching 0.45 fails 0.6 too


@pytest.mark.slow
def test_harness_trains_evaluates_and_caches(flanges, tmp_path):
    out = tmp_path / "out"
    overrides = {"size": (64, 64), "epochs": 2, "views": 2, "batch_size": 8}
    rows, summary = accuracy.run([flanges], ["anomaly", "supervised"], out, threads=2,
                                 overrides=overrides)
    assert [r["mode"] for r in rows] == ["anomaly", "supervised"]
    for r in rows:
        assert 0 <= r["auroc"] <= 1 and 0 <= r["recall_at_frr_5"] <= 1
        assert r["pixel_auroc"] is not None and r["latency_ms"] > 0
        assert r["n_test"]["good"] > 0 and r["n_test"]["defect"] > 0
    saved = json.loads((out / "accuracy.json").read_text())
    assert saved["rows"] == rows and set(saved["summary"]) == {"anomaly", "supervised"}
    table = (out / "accuracy.md").read_text()
    assert "| flange | anomaly |" in table and "worst AUROC" in table
    # a second run takes every row from the cache: same figures, no training
    again, _ = accuracy.run([flanges], ["anomaly", "supervised"], out, threads=2,
                            overrides=overrides)
    assert again == rows
