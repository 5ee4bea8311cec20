"""`--mode auto`: the rule that picks a mode, and the whole path on generated flanges."""

from __future__ import annotations

import numpy as np
import pytest

from qc.modelpack import read_info
from training.auto import FEW_DEFECTS, FEW_MARGIN, choose_mode, compare, fit_auto
from training.config import TrainConfig, TrainResult, ValidationScores


def test_supervised_wins_ties_and_better_rankings_with_enough_defects():
    assert choose_mode({"supervised": 0.97, "anomaly": 0.90}, 40).mode == "supervised"
    assert choose_mode({"supervised": 0.95, "anomaly": 0.95}, 40).mode == "supervised"
    worse = choose_mode({"supervised": 0.90, "anomaly": 0.95}, 40)
    assert worse.mode == "anomaly" and "0.950 vs 0.900" in worse.reason


def test_few_defects_must_win_clearly():
    n = FEW_DEFECTS - 1
    slightly = choose_mode({"supervised": 0.93 + FEW_MARGIN / 2, "anomaly": 0.93}, n)
    assert slightly.mode == "anomaly" and f"{n} defect photos" in slightly.reason
    clearly = choose_mode({"supervised": 0.93 + FEW_MARGIN + 0.01, "anomaly": 0.93}, n)
    assert clearly.mode == "supervised"


def _result(paths, labels, scores) -> TrainResult:
    return TrainResult(path=None, info=None, seconds=0,
                       validation=ValidationScores(paths, np.array(labels), np.array(scores)))


def test_compare_uses_only_images_both_modes_validated_on():
    sup = _result(["a", "b", "c", "d", "e"], [0, 0, 0, 1, 1], [0.9, 0.1, 0.2, 0.8, 0.7])
    ano = _result(["b", "c", "d", "e"], [0, 0, 1, 1], [0.5, 0.6, 0.4, 0.3])
    auroc, n = compare({"supervised": sup, "anomaly": ano})
    # "a" (a good image the supervised model scores high) is not in the comparison
    assert n == 4 and auroc == {"supervised": 1.0, "anomaly": 0.0}


@pytest.mark.slow
def test_auto_trains_both_and_records_the_choice(tiny_dataset, tmp_path):
    config = TrainConfig(data=tiny_dataset, out=tmp_path / "m.onnx", size=(64, 64), epochs=3,
                         views=1, threads=2)
    result = fit_auto(config)
    info = read_info(tmp_path / "m.onnx")
    auto = info.training["auto"]
    assert info.mode == auto["chosen"] == result.info.mode
    assert set(auto["auroc"]) == {"supervised", "anomaly"} and auto["n_defect"] == 12
    assert auto["n_images"] >= 12 and auto["reason"]


def test_auto_with_good_photos_only_is_anomaly(tmp_path):
    from training.synth import generate_dataset

    root = tmp_path / "goods"
    generate_dataset(root, n_good=12, n_per_type=0, size=64, seed=2, types=())
    result = fit_auto(TrainConfig(data=root, out=tmp_path / "g.onnx", size=(64, 64), threads=2))
    assert result.info.mode == "anomaly"
    assert read_info(tmp_path / "g.onnx").training["auto"]["reason"] == "good photos only"
