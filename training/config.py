"""Training settings in one place (each default with its reason) and a training run's result."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

import qc
from qc.imaging import Preprocessing
from qc.modelpack import ModelInfo


@dataclass
class TrainConfig:
    """What `qc train` was asked to do."""

    data: Path
    out: Path
    mode: str = "supervised"  # "supervised" | "anomaly"
    product: str | None = None  # default: the data folder's name
    size: tuple[int, int] = (224, 224)  # (W, H); 224 is what the backbone was trained at
    resize: str = "stretch"
    epochs: int = 25  # upper bound; early stopping usually ends sooner
    patience: int = 4  # epochs without validation improvement before stopping
    max_minutes: float = 10.0  # "retrain the same day": no epoch starts that would pass this
    batch_size: int = 16  # fits 2-core CPUs; BN statistics are frozen so small batches are fine
    lr: float = 1e-3  # head; the backbone gets lr / 10
    val_fraction: float = 0.25  # held out, stratified and group-aware, for stopping + threshold
    target_recall: float = 0.99  # threshold catches 99% of validation defects...
    target_frr: float = 0.01  # ...or, with good images only, rejects ~1% of good ones
    group_by: str | None = None  # regex on file stems: images of one part stay together
    group_size: int | None = None  # or: consecutive numbers // group_size form one part
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    strict: bool = False  # unreadable images are fatal instead of skipped
    coreset_ratio: float = 0.1  # anomaly: fraction of patch features kept in the memory bank
    position_norm: str = "auto"  # anomaly: per-position distance reference (docs/anomaly.md)
    threads: int | None = None  # torch CPU threads (None: torch's default)

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
    history: list[dict] = field(default_factory=list)  # per-epoch metrics, if any


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
