"""Decision thresholds and the one score scale.

Every qc model reports `score` in 0..1 with its decision at 0.5. The raw network output is
mapped by a monotone piecewise-linear function through three anchors chosen on validation data:
low -> 0, threshold -> 0.5, high -> 1 (clipped outside). Ranking (AUROC) is unchanged, and an
operator reads every model, supervised or anomaly, on one scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Threshold:
    """A chosen decision threshold on raw scores and how it was chosen."""

    value: float
    method: str  # "target_recall" | "good_quantile"
    target: float
    recall: float | None  # on the calibration data
    false_reject_rate: float
    n_good: int
    n_defect: int

    def to_dict(self) -> dict:
        """JSON-ready form, as stored in model metadata."""
        return asdict(self)


def select_threshold(scores: np.ndarray, labels: np.ndarray, target_recall: float = 0.99):
    """The threshold that catches >= target_recall of defects with the fewest false rejects.

    A sample fails when score >= threshold. Among thresholds reaching the target, the highest
    is kept (fewest good images rejected); it is then placed midway to the next lower score so
    the margin on both sides is as large as the data allow.
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    defect, good = scores[labels == 1], scores[labels == 0]
    if len(defect) == 0:
        raise ValueError("select_threshold needs defect examples; use good_only_threshold")
    if not 0 < target_recall <= 1:
        raise ValueError("target recall must be in (0, 1]")
    ordered = np.sort(defect)
    allowed_misses = int(np.floor((1 - target_recall) * len(defect) + 1e-9))
    cut = ordered[allowed_misses]  # lowest defect score that must still fail
    below = scores[scores < cut]
    value = float((cut + below.max()) / 2) if len(below) else float(cut)
    return Threshold(
        value=value,
        method="target_recall",
        target=target_recall,
        recall=float((defect >= value).mean()),
        false_reject_rate=float((good >= value).mean()) if len(good) else 0.0,
        n_good=len(good),
        n_defect=len(defect),
    )


def good_only_threshold(good_scores: np.ndarray, target_frr: float = 0.01) -> Threshold:
    """Threshold from held-out good images only: their (1 - target_frr) quantile.

    With few images a quantile is noisy, so it is never placed below the maximum of the
    mean + 3 sigma rule's estimate and the chosen quantile (whichever is higher is used).
    """
    good = np.asarray(good_scores, float)
    if len(good) < 2:
        raise ValueError("need at least 2 held-out good images to set a threshold")
    quantile = float(np.quantile(good, 1 - target_frr))
    value = max(quantile, float(good.mean() + 3 * good.std(ddof=1)))
    return Threshold(
        value=value,
        method="good_quantile",
        target=target_frr,
        recall=None,
        false_reject_rate=float((good >= value).mean()),
        n_good=len(good),
        n_defect=0,
    )


@dataclass
class ScoreScale:
    """Raw anchors mapped to 0, 0.5 and 1."""

    low: float
    threshold: float
    high: float

    @classmethod
    def fit(cls, threshold: float, raw_scores: np.ndarray, bounded: bool = False) -> ScoreScale:
        """Anchors for a threshold: [0, 1] for probabilities, else from the observed spread."""
        if bounded:
            return cls(0.0, threshold, 1.0)
        raw = np.asarray(raw_scores, float)
        low = min(float(raw.min()), threshold - 1e-6)
        spread = max(threshold - low, 1e-6)
        high = max(float(raw.max()), threshold + spread)
        return cls(low, threshold, high)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores to the 0..1 scale (numpy)."""
        raw = np.asarray(raw, float)
        below = 0.5 * (raw - self.low) / max(self.threshold - self.low, 1e-12)
        above = 0.5 + 0.5 * (raw - self.threshold) / max(self.high - self.threshold, 1e-12)
        return np.clip(np.where(raw < self.threshold, below, above), 0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready form, as stored in model metadata."""
        return asdict(self)


class ScoreScaleLayer(nn.Module):
    """ScoreScale inside the exported graph."""

    def __init__(self, scale: ScoreScale):
        super().__init__()
        self.register_buffer("low", torch.tensor(float(scale.low)))
        self.register_buffer("threshold", torch.tensor(float(scale.threshold)))
        self.register_buffer("high", torch.tensor(float(scale.high)))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        below = 0.5 * (raw - self.low) / (self.threshold - self.low).clamp_min(1e-12)
        above = 0.5 + 0.5 * (raw - self.threshold) / (self.high - self.threshold).clamp_min(1e-12)
        return torch.where(raw < self.threshold, below, above).clamp(0.0, 1.0)
