"""What a training job does in the worker: gather its images in the `qc train` layout, call the
CLI's own `run_training` with a TrainConfig, evaluate the model into the HTML report, and store
it as a (not yet active) model version of the product.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import traceback
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, Product, TaughtPhoto, TrainingJob, utcnow
from qc.service import registry
from qc.service.auth import Principal
from qc.service.database import get_database
from qc.service.dataset import folder_of, label_of, photos_query
from qc.service.jobs import store
from qc.service.jobs.progress import CHECK, EXPORT, FIT, JobCancelled, Progress, watch
from qc.service.jobs.upload import DatasetCounts, unpack
from qc.service.queries import Filters
from qc.service.storage import Storage

log = logging.getLogger(__name__)

WORKER = Principal(username="qc-worker", role="engineer")  # sees every result of the product


def run_job(app: Flask, job_id: int) -> str | None:
    """Run one queued job to its end; returns its final state (None if it was not queued)."""
    with app.app_context():
        database = get_database()
        db = database.session()
        try:
            if not store.claim(db, job_id):
                log.info("training job %d is not queued any more; skipped", job_id)
                return None
            return _run(app, db, db.get(TrainingJob, job_id))
        finally:
            db.close()


def _run(app: Flask, db: Session, job: TrainingJob) -> str:
    storage = app.extensions["qc.storage"]
    from training.config import TrainConfig  # the worker has torch; the web side need not

    progress = Progress()
    beat = _beat(app, job.id)
    state, error, result = "failed", None, {}
    try:
        with tempfile.TemporaryDirectory(prefix=f"qc-job-{job.id}-") as tmp, \
                watch(progress, beat):
            data = Path(tmp) / _folder_name(job.product.name)
            counts = gather(db, storage, job, data, app.config["MAX_IMAGE_PIXELS"])
            log.info("job %d: %d good, %d defect images %s", job.id, counts.good,
                     counts.defects, counts.defect)
            config = TrainConfig(data=data, out=Path(tmp) / "model.onnx",
                                 product=job.product.name, **_config_options(job.options))
            result = train_and_report(config, storage, job.id, progress)
            version = registry.upload_model(db, storage, config.out, job.product, job.created_by)
            result["model_version_id"] = version.id
        state = "succeeded"
    except JobCancelled:
        state, error = "cancelled", "cancelled while training"
    except Exception as exc:  # the job fails with the reason; the worker goes on
        db.rollback()
        error = _message(exc)
        log.error("training job %d failed: %s\n%s", job.id, error, traceback.format_exc())
    db.expire_all()
    job = db.get(TrainingJob, job.id)
    job.log = store.append_log(job.log, progress.take_log())
    job.model_version_id = result.get("model_version_id")
    job.report_path = result.get("report_path")
    store.finish(job, state, error=error)
    db.commit()
    log.info("training job %d %s", job.id, state)
    return state


def train_and_report(config, storage: Storage, job_id: int, progress: Progress) -> dict:
    """`qc train` then `qc evaluate` on the same data: the model and the report's path."""
    from training.commands import run_training
    from training.evaluate import evaluate
    from training.report import write_report

    run_training(config)
    progress.set("evaluation", CHECK + FIT + EXPORT)
    relative = f"jobs/{job_id}"
    paths = write_report(evaluate(config.out, config.data), storage.resolve(relative), config.out)
    return {"report_path": f"{relative}/{Path(paths['html']).name}"}


def gather(db: Session, storage: Storage, job: TrainingJob, dest: Path,
           max_pixels: int) -> DatasetCounts:
    """The job's images in dest: the uploaded zip, else reviewed results and taught photos."""
    if job.dataset_path:
        return unpack(storage.resolve(job.dataset_path), dest, max_pixels)
    counts = DatasetCounts()
    for label, source, name in product_photos(db, storage, job.product):
        target = dest / folder_of(label) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        if label == "good":
            counts.good += 1
        else:
            counts.defect[label] = counts.defect.get(label, 0) + 1
    return counts


def product_photos(db: Session, storage: Storage, product: Product):
    """(label, file, name) of the product's reviewed results (as /dataset.zip labels them) and
    of its taught photos."""
    query = photos_query(Filters(product=product.name, reviewed=True), WORKER)
    for insp in db.scalars(query.order_by(Inspection.inspected_at)):
        path = storage.resolve(insp.image_path)
        if path.exists():
            yield label_of(insp.review_label, insp.verdict, insp.defect_type), path, \
                f"{insp.id}{path.suffix}"
    taught = select(TaughtPhoto).where(TaughtPhoto.product_id == product.id)
    for photo in db.scalars(taught.order_by(TaughtPhoto.id)):
        path = storage.resolve(photo.image_path)
        if path.exists():
            yield photo.label, path, f"taught-{photo.id}{path.suffix}"


def _beat(app: Flask, job_id: int):
    """The heartbeat: write progress and new log lines; True when cancel was asked."""
    database = get_database()

    def beat(progress: Progress) -> bool:
        with database.session() as db:
            job = db.get(TrainingJob, job_id)
            job.stage, job.progress, job.eta_s = progress.stage, progress.value, progress.eta_s()
            job.log = store.append_log(job.log, progress.take_log())
            job.heartbeat_at = utcnow()
            db.commit()
            return bool(job.cancel_requested)

    return beat


def _config_options(options: dict) -> dict:
    out = dict(options)
    if "size" in out:
        out["size"] = tuple(out["size"])
    return out


def _folder_name(product: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in product) or "product"


def _message(exc: Exception) -> str:
    """The user-facing reason (click's and the dataset's messages say what to fix)."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if isinstance(text, str) else str(text)
