"""Image-quality guard decisions on synthetic images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config import GuardConfig
from edge.guard import check, drifted, z_score
from qc.imaging import quality_stats


def _scene(level: int = 120, seed: int = 0) -> np.ndarray:
    """A textured, well exposed RGB image (edges, so it is sharp)."""
    rng = np.random.default_rng(seed)
    image = np.full((240, 320, 3), level, np.uint8)
    for _ in range(30):
        x, y = rng.integers(0, 300), rng.integers(0, 220)
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 20, int(y) + 15),
                      tuple(int(v) for v in rng.integers(60, 200, 3)), -1)
    return image


def _reference(images: list[np.ndarray]) -> dict:
    rows = [quality_stats(im) for im in images]
    return {k: {"mean": float(np.mean([r[k] for r in rows])),
                "std": float(np.std([r[k] for r in rows]))} for k in rows[0]}


def test_good_frame_has_no_flags():
    image = _scene()
    reference = _reference([_scene(seed=s) for s in range(5)])
    assert check(quality_stats(image), GuardConfig(), reference) == []


def test_blurred_frame_is_flagged():
    blurred = cv2.GaussianBlur(_scene(), (0, 0), 6)
    assert "blurred" in check(quality_stats(blurred), GuardConfig())


@pytest.mark.parametrize(("gain", "flag"), [(0.1, "underexposed"), (3.0, "overexposed")])
def test_exposure_is_flagged(gain, flag):
    image = np.clip(_scene().astype(np.float32) * gain, 0, 255).astype(np.uint8)
    assert flag in check(quality_stats(image), GuardConfig())


def test_clipped_highlights_are_overexposed():
    image = _scene()
    image[:60] = 255  # a quarter of the frame blown out, mean brightness still fine
    flags = check(quality_stats(image), GuardConfig())
    assert flags == ["overexposed"]


def test_lighting_change_is_drift_against_training_stats():
    reference = _reference([_scene(seed=s) for s in range(5)])
    darker = np.clip(_scene().astype(np.float32) * 0.6, 0, 255).astype(np.uint8)
    flags = check(quality_stats(darker), GuardConfig(), reference)
    assert "drift:brightness" in flags
    assert "underexposed" not in flags  # still a usable exposure, just not what training saw


def test_disabled_checks():
    blurred = cv2.GaussianBlur(_scene(), (0, 0), 6)
    assert check(quality_stats(blurred), GuardConfig(enabled=False)) == []
    assert "blurred" not in check(quality_stats(blurred), GuardConfig(min_sharpness=0))
    stats = {"brightness": 10.0}
    assert drifted(stats, {"brightness": {"mean": 100.0, "std": 1.0}}, 0) == []


def test_z_score_floors_tiny_spread_and_skips_bad_reference():
    assert z_score(105.0, 100.0, 0.0) == pytest.approx(1.0)  # std floored at 5% of the mean
    assert z_score(2.0, 0.0, 0.0) == pytest.approx(2.0)  # and at 1 unit
    stats = {"brightness": 50.0, "contrast": 10.0}
    assert drifted(stats, {"brightness": {"mean": "x"}, "contrast": None}, 3.0) == []
