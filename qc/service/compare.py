"""Compare a model version with the product's active model on the plant's own reviewed results
(the last N with photos): recall, false rejects, and the units where the two disagree, with the
photo and each model's heatmap. Shown before anyone activates a new model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import cv2
import numpy as np
from sqlalchemy.orm import Session

from qc.db.models import Inspection, ModelVersion, Product
from qc.heatmap import encode_jpeg, overlay
from qc.imaging import ImageError, read_image
from qc.inference import Verdict
from qc.service.dataset import label_of, photos_query
from qc.service.queries import Filters
from qc.service.runner import InspectorCache
from qc.service.storage import Storage

DEFAULT_LAST = 100  # reviewed units compared: enough to see a difference, seconds on a CPU
MAX_LAST = 1000
SHOWN = 24  # disagreements shown with photos
THUMB_SIDE = 320


@dataclass
class Score:
    """One model on the compared units."""

    model_id: int
    version: str
    defects_caught: int = 0
    good_rejected: int = 0
    defects: int = 0
    goods: int = 0

    @property
    def recall(self) -> float | None:
        return self.defects_caught / self.defects if self.defects else None

    @property
    def false_reject_rate(self) -> float | None:
        return self.good_rejected / self.goods if self.goods else None

    def add(self, is_defect: bool, verdict: Verdict) -> None:
        fail = verdict.verdict == "fail"
        if is_defect:
            self.defects += 1
            self.defects_caught += fail
        else:
            self.goods += 1
            self.good_rejected += fail

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "version": self.version, "recall": self.recall,
                "false_reject_rate": self.false_reject_rate, "defects": self.defects,
                "defects_caught": self.defects_caught, "goods": self.goods,
                "good_rejected": self.good_rejected}


@dataclass
class Comparison:
    """A candidate against the active model (None when the product has none yet)."""

    product: str
    units: int
    candidate: Score
    active: Score | None
    disagreements: list[dict] = field(default_factory=list)
    disagreement_count: int = 0

    def as_dict(self) -> dict:
        return {"product": self.product, "units": self.units,
                "candidate": self.candidate.as_dict(),
                "active": self.active.as_dict() if self.active else None,
                "disagreement_count": self.disagreement_count,
                "disagreements": self.disagreements}


def compare(db: Session, storage: Storage, inspectors: InspectorCache, principal,
            candidate: ModelVersion, last: int = DEFAULT_LAST) -> Comparison:
    """Run the candidate and the active model on the product's last `last` reviewed photos."""
    product: Product = candidate.product
    active = product.active_model if product.active_model_id != candidate.id else None
    models = [(candidate, Score(candidate.id, candidate.version))]
    if active is not None:
        models.append((active, Score(active.id, active.version)))
    query = photos_query(Filters(product=product.name, reviewed=True), principal)
    query = query.order_by(Inspection.inspected_at.desc(), Inspection.id.desc()).limit(last)
    result = Comparison(product.name, 0, models[0][1], models[1][1] if active else None)
    for insp in db.scalars(query):
        try:
            image = read_image(storage.resolve(insp.image_path))
        except (ImageError, ValueError):
            continue  # removed by retention or unreadable: not part of the comparison
        label = label_of(insp.review_label, insp.verdict, insp.defect_type)
        verdicts = []
        for version, score in models:
            verdict = inspectors.get(version.sha256, storage.resolve(version.path)).inspect(image)
            score.add(label != "good", verdict)
            verdicts.append(verdict)
        result.units += 1
        if len(verdicts) == 2 and verdicts[0].verdict != verdicts[1].verdict:
            result.disagreement_count += 1
            if len(result.disagreements) < SHOWN:
                result.disagreements.append(_disagreement(insp, label, image, verdicts))
    return result


def _disagreement(insp: Inspection, label: str, image: np.ndarray,
                  verdicts: list[Verdict]) -> dict:
    thumb = _thumb(image)
    return {
        "id": insp.id,
        "label": label,
        "photo": _data_uri(encode_jpeg(thumb, 85)),
        "candidate": _side(thumb, verdicts[0]),
        "active": _side(thumb, verdicts[1]),
    }


def _side(thumb: np.ndarray, verdict: Verdict) -> dict:
    heatmap = None
    if verdict.anomaly_map is not None:
        heatmap = _data_uri(encode_jpeg(overlay(thumb, verdict.anomaly_map), 80))
    return {"verdict": verdict.verdict, "score": round(float(verdict.score), 4),
            "defect_type": verdict.defect_type, "heatmap": heatmap}


def _thumb(image: np.ndarray) -> np.ndarray:
    scale = THUMB_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
