"""What `qc demo` shows of training jobs: the job that trained the flange model (finished, its
model active) and a second product, flange-v2, whose photos an operator taught at the station,
ready for an engineer to train on /models."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import ModelVersion, Product, TaughtPhoto, TrainingJob, utcnow
from qc.service import registry
from qc.service.storage import Storage, sniff_suffix

log = logging.getLogger(__name__)

NEW_PRODUCT = "flange-v2"  # a new revision of the part, taught at the station
TAUGHT = {"good": 12, "scratch": 3, "dent": 3}  # enough for either training mode


def record_model_job(db: Session, version: ModelVersion) -> TrainingJob:
    """The finished job behind the demo model (trained by `qc demo` with run_training)."""
    info = version.info
    options = {"mode": info.get("mode"), "size": list(info.get("input_size") or [])}
    now = utcnow()
    job = TrainingJob(
        product_id=version.product_id, state="succeeded", options=options, progress=1.0,
        stage="done", cancel_requested=False, created_by="demo", model_version_id=version.id,
        created_at=now, started_at=now, finished_at=now,
        log=f"trained by `qc demo` on the sample flanges: {version.version}, "
            f"data {info.get('data_fingerprint')}\n",
    )
    db.add(job)
    return job


def teach_samples(db: Session, storage: Storage, samples: Path) -> int:
    """flange-v2 with sample photos taught as good / scratch / dent by the operator."""
    if db.scalar(select(Product).where(Product.name == NEW_PRODUCT)) is not None:
        return 0
    product = registry.create_product(db, NEW_PRODUCT, "FL-80-V2")
    taught = 0
    for label, n in TAUGHT.items():
        folder = samples / ("good" if label == "good" else f"defect/{label}")
        for path in sorted(folder.glob("*.jpg"))[-n:]:
            data = path.read_bytes()
            relative = storage.save_bytes(
                f"taught/{product.id}/{label}-{path.stem}.{sniff_suffix(data)}", data)
            db.add(TaughtPhoto(product_id=product.id, label=label, image_path=relative,
                               taught_by="operator", taught_at=utcnow()))
            taught += 1
    log.info("demo: %d photos taught for %s", taught, NEW_PRODUCT)
    return taught


def add_training_story(db: Session, storage: Storage, version: ModelVersion,
                       samples: Path) -> int:
    """Both of the above; returns how many photos were taught."""
    record_model_job(db, version)
    return teach_samples(db, storage, samples) if (samples / "good").is_dir() else 0
