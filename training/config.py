"""Training settings in one place (each default with its reason) and a training run's result."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import qc
from qc.imaging import Preprocessing
from qc.modelpack import ModelInfo
from training.data import auto_size


@dataclass
class TrainConfig:
    """What `qc train` was asked to do."""

    data: Path
    out: Path
    mode: str = "auto"  # "auto" | "supervised" | "anomaly" (training.auto.MODES)
    product: str | None = None  # default: the data folder's name
    # (W, H); None: follow the images' aspect ratio with a 224 px short side (data.auto_size).
    # Why: a 2.5:1 part squeezed to a square loses its thin defects (KolektorSDD good-only
    # image AUROC 0.74 at 224x224 vs 0.87 at 224x512)
    size: tuple[int, int] | None = None
    resize: str = "stretch"
    epochs: int = 40  # supervised heads: passes over the cached trunk features (seconds each)
    max_minutes: float = 10.0  # "retrain the same day": augmented views are cut to fit this
    batch_size: int = 16  # fits 2-core CPUs; the trunk is frozen so small batches are fine
    lr: float = 1e-3  # supervised heads (AdamW, cosine schedule)
    folds: int = 5  # supervised: out-of-fold scores over all images set the threshold
    views: int = 4  # supervised: the plain image + 3 augmented views, features cached once
    val_fraction: float = 0.25  # anomaly: good images held out (by part) for the threshold
    target_recall: float = 0.99  # threshold catches 99% of validation defects...
    max_frr: float = 0.10  # ...unless that rejects more than 10 % of good ones (then: 10 %)
    target_frr: float = 0.01  # with good images only: rejects ~1% of good ones
    group_by: str | None = None  # regex on file stems: images of one part stay together
    group_size: int | None = None  # or: consecutive numbers // group_size form one part
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    strict: bool = False  # unreadable images are fatal instead of skipped
    coreset_ratio: float = 0.1  # anomaly: fraction of patch features kept in the memory bank
    position_norm: str = "auto"  # anomaly: per-position distance reference (docs/anomaly.md)
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def with_size(self, samples) -> TrainConfig:
        """This config with its input size fixed: the given one, or the images' (auto)."""
        if self.size is not None:
            return replace(self, size=tuple(self.size))
        return replace(self, size=auto_size(samples))

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(size=tuple(self.size), resize=self.resize)

    @property
    def product_name(self) -> str:
        return self.product or Path(self.data).resolve().name

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"], d["out"] = str(self.data), str(self.out)
        return d


@dataclass
class TrainResult:
    """What a training run produced."""

    path: Path
    info: ModelInfo
    seconds: float
    # raw scores of images the model did not learn from: out-of-fold (supervised) or held-out
    # good + defect images (anomaly); --mode auto compares modes on them
    validation: ValidationScores | None = None


@dataclass
class ValidationScores:
    """Raw scores of validation images, each by a model that did not train on it."""

    paths: list[Path]
    labels: np.ndarray  # (N,) 0 good, 1 defect
    scores: np.ndarray  # (N,) raw, higher = more defective


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_version(product: str, fingerprint: str) -> str:
    """A sortable, unique model version: product-YYYYMMDD-HHMMSS-<data hash>."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in product)
    return f"{safe}-{stamp}-{fingerprint.split(':')[-1][:8]}"


def base_info(config: TrainConfig, fingerprint: str, **fields_) -> ModelInfo:
    """ModelInfo with the fields every mode fills the same way."""
    return ModelInfo(
        product=config.product_name,
        mode=config.mode,
        input_size=tuple(config.size),
        resize=config.resize,
        data_fingerprint=fingerprint,
        version=model_version(config.product_name, fingerprint),
        qc_version=qc.__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields_,
    )


def environment() -> dict:
    """Where training ran (for the model's metadata and the report)."""
    return {
        "host": platform.node(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
