"""Image-quality guard: pure decisions on qc.imaging.quality_stats, so a blurred lens, bad
exposure, a moved camera or changed lighting is flagged before it silently yields wrong verdicts.

Flags: "blurred", "underexposed", "overexposed", and "drift:<stat>" when a statistic is more than
drift_z standard deviations from the model's training images (ModelInfo.image_stats).
"""

from __future__ import annotations

import logging
import math

from edge.config import GuardConfig

log = logging.getLogger(__name__)

DRIFT_STATS = ("brightness", "contrast", "sharpness")
# Why: a training set of near-identical images has a tiny std, and every frame would "drift";
# 5% of the mean (or 1 unit) is the smallest spread we treat as meaningful.
REL_STD_FLOOR = 0.05
ABS_STD_FLOOR = 1.0


def check(stats: dict[str, float], config: GuardConfig, reference: dict | None = None) -> list[str]:
    """Flags for one frame's quality stats; an empty list means the frame looks usable."""
    if not config.enabled:
        return []
    flags = []
    if config.min_sharpness and stats["sharpness"] < config.min_sharpness:
        flags.append("blurred")
    if _underexposed(stats, config):
        flags.append("underexposed")
    if _overexposed(stats, config):
        flags.append("overexposed")
    flags.extend(f"drift:{name}" for name in drifted(stats, reference or {}, config.drift_z))
    return flags


def _underexposed(stats: dict[str, float], c: GuardConfig) -> bool:
    too_dark = bool(c.min_brightness) and stats["brightness"] < c.min_brightness
    crushed = bool(c.max_dark_fraction) and stats["dark_fraction"] > c.max_dark_fraction
    return too_dark or crushed


def _overexposed(stats: dict[str, float], c: GuardConfig) -> bool:
    too_bright = bool(c.max_brightness) and stats["brightness"] > c.max_brightness
    clipped = bool(c.max_bright_fraction) and stats["bright_fraction"] > c.max_bright_fraction
    return too_bright or clipped


def z_score(value: float, mean: float, std: float) -> float:
    """Distance from the training mean in (floored) standard deviations."""
    spread = max(std, REL_STD_FLOOR * abs(mean), ABS_STD_FLOOR)
    return (value - mean) / spread


def drifted(stats: dict[str, float], reference: dict, drift_z: float) -> list[str]:
    """Names of the statistics that are more than drift_z from the training images."""
    if not drift_z:
        return []
    out = []
    for name in DRIFT_STATS:
        ref = reference.get(name)
        if not isinstance(ref, dict) or name not in stats:
            continue
        try:
            z = z_score(stats[name], float(ref["mean"]), float(ref["std"]))
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(z) and abs(z) > drift_z:
            out.append(name)
    return out
