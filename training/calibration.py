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
from scipy.stats import binomtest
from torch import nn

CONFIDENCE = 0.95  # intervals on recall and false-reject rate
TRADE_OFF_RECALLS = (0.90, 0.95, 0.99)
TRADE_OFF_FRRS = (0.01, 0.05, 0.10)


@dataclass
class Threshold:
    """A chosen decision threshold on raw scores and how it was chosen."""

    value: float
    method: str  # "target_recall" | "max_frr" (the target would reject too many) | "good_quantile"
    target: float
    recall: float | None  # on the calibration data
    false_reject_rate: float
    n_good: int
    n_defect: int
    recall_ci: tuple[float, float] | None = None  # Wilson 95 % interval
    false_reject_rate_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        """JSON-ready form, as stored in model metadata."""
        return asdict(self)


def proportion_ci(k: int, n: int) -> tuple[float, float] | None:
    """Wilson score interval (95 %) of a proportion k / n; None without observations."""
    if n <= 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def select_threshold(scores: np.ndarray, labels: np.ndarray, target_recall: float = 0.99,
                     max_frr: float | None = None):
    """The threshold that catches >= target_recall of defects with the fewest false rejects.

    A sample fails when score >= threshold. Among thresholds reaching the target, the highest
    is kept (fewest good images rejected); it is then placed midway to the next lower score so
    the margin on both sides is as large as the data allow. When that threshold would reject
    more than max_frr of the good images, the threshold rejecting at most max_frr is used
    instead (method "max_frr"): a line cannot run while scrapping a large share of good parts.
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
    method = "target_recall"
    if max_frr is not None and len(good) and (good >= value).mean() > max_frr:
        value, method = frr_threshold(scores, good, max_frr), "max_frr"
    return _threshold(value, method, target_recall, good, defect)


def frr_threshold(scores: np.ndarray, good: np.ndarray, frr: float) -> float:
    """The lowest threshold that rejects at most `frr` of the good scores (midway placed)."""
    ordered = np.sort(good)[::-1]
    allowed = int(np.floor(frr * len(good) + 1e-9))  # good images that may fail
    cut = ordered[allowed]  # the highest good score that must pass
    above = scores[scores > cut]
    return float((cut + above.min()) / 2) if len(above) else float(cut) + 1e-6


def _threshold(value: float, method: str, target: float, good: np.ndarray,
               defect: np.ndarray) -> Threshold:
    caught, rejected = int((defect >= value).sum()), int((good >= value).sum())
    return Threshold(
        value=float(value), method=method, target=target,
        recall=caught / len(defect) if len(defect) else None,
        false_reject_rate=rejected / len(good) if len(good) else 0.0,
        n_good=len(good), n_defect=len(defect),
        recall_ci=proportion_ci(caught, len(defect)),
        false_reject_rate_ci=proportion_ci(rejected, len(good)),
    )


def trade_off(scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Operating points a plant can choose from: the false rejects each target recall costs,
    and the recall each false-reject budget buys (on the calibration scores)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    good, defect = scores[labels == 0], scores[labels == 1]
    if not len(good) or not len(defect):
        return []
    rows = [select_threshold(scores, labels, r) for r in TRADE_OFF_RECALLS]
    rows += [_threshold(frr_threshold(scores, good, f), "max_frr", f, good, defect)
             for f in TRADE_OFF_FRRS]
    return [{"method": t.method, "target": t.target, "threshold": t.value, "recall": t.recall,
             "false_reject_rate": t.false_reject_rate} for t in rows]


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
    return _threshold(value, "good_quantile", target_frr, good, np.zeros(0))


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
