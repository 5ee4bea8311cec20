"""Evaluate an exported model on a labelled dataset folder, exactly as a station would run it
(qc.inference + qc.imaging: the deployed path, not the torch one).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from tqdm import tqdm

from qc.imaging import ImageError, read_image, read_mask
from qc.inference import DECISION, Inspector
from training import data as ds

log = logging.getLogger(__name__)

PIXEL_MAP_WIDTH = 128  # maps and masks are compared at this width: enough for AUROC, little RAM
GALLERY_SIZE = 6
AUPRO_MAX_FPR = 0.3  # the usual integration limit: beyond it a map is useless on the line


@dataclass
class ImageResult:
    """One evaluated image."""

    path: str
    label: int
    defect_type: str | None
    score: float
    verdict: str
    predicted_type: str | None

    @property
    def correct(self) -> bool:
        return (self.verdict == "fail") == (self.label == 1)


@dataclass
class Evaluation:
    """Metrics of a model on a dataset, and the per-image results behind them."""

    model: dict
    data: str
    counts: dict
    metrics: dict
    per_type_recall: dict
    confusion: dict
    curves: dict
    results: list[ImageResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def misclassified(self) -> list[ImageResult]:
        return [r for r in self.results if not r.correct]


def evaluate(model_path: str | Path, data: str | Path, threads: int | None = None,
             strict: bool = False) -> Evaluation:
    """Run the model over every image of DATA and compute image (and pixel) metrics."""
    inspector = Inspector(model_path, threads=threads)
    dataset = ds.scan(data, strict=strict, check=False)
    if not dataset.samples:
        raise ds.DatasetError(f"{data}: no images found")
    results, errors, pixel_maps, pixel_masks = [], [], [], []
    for sample in tqdm(dataset.samples, desc="evaluating", unit="img"):
        try:
            image = read_image(sample.path)
        except ImageError as exc:
            errors.append({"path": str(sample.path), "error": str(exc)})
            continue
        verdict = inspector.inspect(image)
        results.append(ImageResult(str(sample.path), sample.label, sample.defect_type,
                                   verdict.score, verdict.verdict, verdict.defect_type))
        mask = _mask_for(sample, image.shape[:2])
        if mask is not None:
            pixel_maps.append(_shrink(verdict.anomaly_map))
            pixel_masks.append(_shrink(mask.astype(np.float32)) > 0.5)
    if errors and strict:
        raise ds.DatasetError(f"{len(errors)} unreadable images (--strict): {errors[0]['error']}")
    scores = np.array([r.score for r in results])
    labels = np.array([r.label for r in results])
    metrics = _image_metrics(scores, labels)
    metrics.update(_pixel_metrics(pixel_maps, pixel_masks))
    return Evaluation(
        model={"path": str(model_path), **asdict(inspector.info)},
        data=str(data),
        counts=dataset.count(),
        metrics=metrics,
        per_type_recall=_per_type_recall(results, dataset.defect_types),
        confusion=_confusion(labels, scores),
        curves=_curves(scores, labels),
        results=results,
        errors=errors,
    )


def _mask_for(sample: ds.Sample, hw: tuple[int, int]) -> np.ndarray | None:
    if sample.label == 0:
        return np.zeros(hw, bool)
    return read_mask(sample.mask_path, hw) if sample.mask_path else None


def _shrink(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    width = min(PIXEL_MAP_WIDTH, w)
    return cv2.resize(a.astype(np.float32), (width, max(1, round(h * width / w))),
                      interpolation=cv2.INTER_AREA)


def _image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    fail = scores >= DECISION
    n_def, n_good = int((labels == 1).sum()), int((labels == 0).sum())
    tp = int((fail & (labels == 1)).sum())
    fp = int((fail & (labels == 0)).sum())
    both = n_def > 0 and n_good > 0
    return {
        "n_images": len(labels),
        "auroc": float(roc_auc_score(labels, scores)) if both else None,
        "average_precision": float(average_precision_score(labels, scores)) if both else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / n_def if n_def else None,
        "false_reject_rate": fp / n_good if n_good else None,
        "accuracy": float((fail == (labels == 1)).mean()),
    }


def _pixel_metrics(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    if not masks or not any(m.any() for m in masks):
        return {}
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([a.ravel() for a in maps])
    return {"pixel_auroc": float(roc_auc_score(y, s)), "aupro": aupro(maps, masks),
            "pixel_images": len(masks)}


def aupro(maps: list[np.ndarray], masks: list[np.ndarray], max_fpr: float = AUPRO_MAX_FPR,
          steps: int = 200) -> float:
    """Area under the per-region-overlap curve up to max_fpr, normalized to 0..1.

    Each connected defect region counts equally, however large (Bergmann et al., MVTec AD):
    a small crack matters as much as a large stain.
    """
    regions = []  # (image index, boolean region)
    for i, mask in enumerate(masks):
        labels, n = ndimage.label(mask)
        regions += [(i, labels == k) for k in range(1, n + 1)]
    background = np.concatenate([a[~m] for a, m in zip(maps, masks)])
    if not regions or background.size == 0:
        return float("nan")
    scores = np.concatenate([a.ravel() for a in maps])
    top = float(scores.max()) + 1e-6
    thresholds = np.unique(np.r_[top, np.quantile(scores, np.linspace(0, 1, steps))])[::-1]
    fpr = np.array([(background >= t).mean() for t in thresholds])  # rising as t falls
    pro = np.array([np.mean([(maps[i][r] >= t).mean() for i, r in regions])
                    for t in thresholds])
    keep = fpr <= max_fpr
    cut_pro = np.interp(max_fpr, fpr, pro)  # the curve's value at the integration limit
    fpr, pro = np.r_[fpr[keep], max_fpr], np.r_[pro[keep], cut_pro]
    return float(np.trapezoid(pro, fpr) / max_fpr)


def _per_type_recall(results: list[ImageResult], types: list[str]) -> dict:
    out = {}
    for t in types:
        rows = [r for r in results if r.defect_type == t]
        if rows:
            caught = sum(r.verdict == "fail" for r in rows)
            out[t] = {"n": len(rows), "caught": caught, "recall": caught / len(rows),
                      "type_correct": sum(r.predicted_type == t for r in rows)}
    return out


def _confusion(labels: np.ndarray, scores: np.ndarray) -> dict:
    cm = confusion_matrix(labels, (scores >= DECISION).astype(int), labels=[0, 1])
    return {"good_pass": int(cm[0, 0]), "good_fail": int(cm[0, 1]),
            "defect_pass": int(cm[1, 0]), "defect_fail": int(cm[1, 1])}


def _curves(scores: np.ndarray, labels: np.ndarray) -> dict:
    if len(np.unique(labels)) < 2:
        return {}
    precision, recall, _ = precision_recall_curve(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"pr": {"precision": precision.tolist(), "recall": recall.tolist()},
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}}


def gallery(evaluation: Evaluation) -> dict[str, list[ImageResult]]:
    """The worst misses (defects scored lowest) and false alarms (good scored highest)."""
    defects = sorted((r for r in evaluation.results if r.label == 1), key=lambda r: r.score)
    goods = sorted((r for r in evaluation.results if r.label == 0), key=lambda r: -r.score)
    return {"misses": defects[:GALLERY_SIZE], "false_alarms": goods[:GALLERY_SIZE]}
