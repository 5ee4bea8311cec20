"""`qc train --mode auto` (the default): pick the mode from the data and from validation.

Good photos only: anomaly mode, the only one possible. With defect photos, both modes are
trained and compared on images neither learnt from (supervised: out-of-fold; anomaly: held-out
good + defect photos, which never enter its memory bank); the better one is kept. With few
defects the supervised model's figures rest on little, so it must win clearly: a handful of
defect photos should never make a model worse than good-only. The decision and its figures go
into the model's metadata (training.auto) and so into the evaluation report.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from sklearn.metrics import roc_auc_score

from qc.modelpack import write_info
from training.config import TrainConfig, TrainResult
from training.data import MIN_DEFECT, scan

log = logging.getLogger(__name__)

FEW_DEFECTS = 20  # below this, supervised must beat anomaly by FEW_MARGIN AUROC to be chosen
FEW_MARGIN = 0.03  # about the AUROC noise of ~20 defects against ~50 good images
MODES = ("auto", "supervised", "anomaly")  # what `qc train --mode` accepts


@dataclass
class Choice:
    """The mode auto mode kept, and why."""

    mode: str
    reason: str
    auroc: dict[str, float]  # validation AUROC per candidate, on the same images
    n_images: int = 0  # images the comparison rests on
    n_defect: int = 0

    def to_dict(self) -> dict:
        return {"chosen": self.mode, "reason": self.reason,
                "auroc": {k: round(v, 4) for k, v in self.auroc.items()},
                "n_images": self.n_images, "n_defect": self.n_defect}


def choose_mode(auroc: dict[str, float], n_defect: int) -> Choice:
    """Supervised when it ranks validation images at least as well (clearly better with few
    defects), else anomaly. Pure: the rule is tested on its own."""
    sup, ano = auroc["supervised"], auroc["anomaly"]
    margin = FEW_MARGIN if n_defect < FEW_DEFECTS else 0.0
    if sup >= ano + margin:
        why = (f"supervised ranks validation images better (AUROC {sup:.3f} vs {ano:.3f})"
               if sup > ano else f"equal AUROC ({sup:.3f}); supervised also learns defect types")
        return Choice("supervised", why, auroc)
    why = (f"anomaly ranks validation images better (AUROC {ano:.3f} vs {sup:.3f})" if ano > sup
           else f"with {n_defect} defect photos supervised must win by {margin:.2f} AUROC "
                f"({sup:.3f} vs {ano:.3f})")
    return Choice("anomaly", why, auroc)


def fit_auto(config: TrainConfig) -> TrainResult:
    """Train the mode the data supports best and write it to config.out."""
    from training.anomaly_fit import fit_anomaly
    from training.supervised_fit import fit_supervised

    dataset = scan(config.data, strict=config.strict, check=False)
    n_defect = int(dataset.labels.sum())
    if n_defect < MIN_DEFECT:
        reason = ("good photos only" if not n_defect else
                  f"{n_defect} defect photos: too few to train on (need {MIN_DEFECT})")
        result = fit_anomaly(replace(config, mode="anomaly"))
        return _record(result, Choice("anomaly", reason, {}, n_defect=n_defect))
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "supervised": fit_supervised(replace(config, mode="supervised",
                                                 out=Path(tmp) / "supervised.onnx")),
            "anomaly": fit_anomaly(replace(config, mode="anomaly",
                                           out=Path(tmp) / "anomaly.onnx")),
        }
        auroc, n_images = compare(results)
        choice = choose_mode(auroc, n_defect)
        choice.n_images, choice.n_defect = n_images, n_defect
        log.info("auto mode: %s (%s)", choice.mode, choice.reason)
        chosen = results[choice.mode]
        chosen.path = _move(chosen.path, Path(config.out))
    return _record(chosen, choice)


def compare(results: dict[str, TrainResult]) -> tuple[dict[str, float], int]:
    """AUROC of each mode on the images every mode validated on (by path)."""
    scored = {m: dict(zip(r.validation.paths, zip(r.validation.labels, r.validation.scores)))
              for m, r in results.items()}
    common = sorted(set.intersection(*(set(s) for s in scored.values())))
    labels = np.array([scored["anomaly"][p][0] for p in common])
    if len(set(labels)) < 2:
        raise ValueError("auto mode: the validation images hold one class only")
    auroc = {m: float(roc_auc_score(labels, [s[p][1] for p in common]))
             for m, s in scored.items()}
    return auroc, len(common)


def _move(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


def _record(result: TrainResult, choice: Choice) -> TrainResult:
    """Store the decision in the model's metadata (training.auto)."""
    result.info.training = {**(result.info.training or {}), "auto": choice.to_dict()}
    model = onnx.load(str(result.path))
    write_info(model, result.info)
    onnx.save(model, str(result.path))
    return result
