"""API routes of training jobs (registered on the api blueprint by register()): start, list,
read, cancel, retry, and the finished job's evaluation report."""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, send_file, url_for
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from qc.db.models import ModelVersion, Product, TrainingJob, utcnow
from qc.service import registry, replies, schemas
from qc.service.auth import current_principal, roles_required
from qc.service.database import get_session
from qc.service.dataset import label_counts
from qc.service.errors import ServiceError
from qc.service.jobs import options as job_options
from qc.service.jobs import store, teach
from qc.service.jobs.queue import get_queue
from qc.service.jobs.upload import DatasetZipError, unpack
from qc.service.openapi import declare
from qc.service.queries import Filters
from qc.service.storage import get_storage

log = logging.getLogger(__name__)

VIEWERS = ("manager", "engineer")


def as_json(job: TrainingJob) -> dict:
    """A job's JSON view with its report URL."""
    url = url_for("api.training_job_report", job_id=job.id) if job.report_path else None
    return store.job_dict(job, url)


@declare(form=schemas.TrainingJobForm, errors=(404, 409),
         responses={201: replies.TrainingJobOut})
@roles_required("engineer")
def start_training_job() -> Any:
    """Start a job: multipart product, mode, size?, epochs?, dataset? (zip in the qc train
    layout; without it, the product's reviewed results and taught photos)."""
    db, principal = get_session(), current_principal()
    product = registry.find(db, Product, (request.form.get("product") or "").strip(), "product")
    options = job_options.parse_options(request.form)
    upload: FileStorage | None = request.files.get("dataset")
    dataset_path = None
    if upload is not None:
        dataset_path, good, defects = _keep_zip(upload)
    else:
        good, defects = product_counts(db, product)
    try:
        job_options.check_counts(options["mode"], good, defects)
        job = store.create_job(db, product, options, principal.username, dataset_path)
        db.commit()
    except ServiceError:
        get_storage().delete(dataset_path)
        raise
    get_queue().enqueue(job.id)
    return jsonify(as_json(job)), 201


def _keep_zip(upload: FileStorage) -> tuple[str, int, int]:
    """Check an uploaded dataset zip (400 with the reason) and store it for the worker."""
    storage = get_storage()
    relative = f"jobs/uploads/{uuid.uuid4().hex}.zip"
    path = storage.resolve(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    upload.save(path)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            counts = unpack(path, Path(tmp), current_app.config["MAX_IMAGE_PIXELS"])
    except DatasetZipError as exc:
        path.unlink(missing_ok=True)
        raise ServiceError(f"dataset refused: {exc}", 400) from None
    return relative, counts.good, counts.defects


def product_counts(db, product: Product) -> tuple[int, int]:
    """(good, defect) images a job without a zip would train on."""
    counts = teach.taught_counts(db, product)
    for folder, n in label_counts(db, Filters(product=product.name, reviewed=True),
                                  current_principal()).items():
        counts[folder.removeprefix("defect/")] = counts.get(folder.removeprefix("defect/"), 0) + n
    good = counts.pop("good", 0)
    return good, sum(counts.values())


@declare(query=schemas.ProductQuery, responses={200: replies.TrainingJobList})
@roles_required(*VIEWERS)
def list_training_jobs() -> Any:
    """Latest jobs (of ?product=NAME), newest first."""
    db = get_session()
    query = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(100)
    if request.args.get("product"):
        product = registry.find(db, Product, request.args["product"], "product")
        query = query.where(TrainingJob.product_id == product.id)
    jobs = db.scalars(query).all()
    if any(store.mark_if_stale(job, utcnow()) for job in jobs):
        db.commit()
    return {"items": [as_json(job) for job in jobs]}


@declare(responses={200: replies.TrainingJobOut})
@roles_required(*VIEWERS)
def get_training_job(job_id: int) -> Any:
    """A job's state, progress, stage, ETA, model and report."""
    db = get_session()
    job = store.get_job(db, job_id)
    db.commit()  # a stale job was just marked failed
    return {**as_json(job), "log": job.log[-20_000:]}


@declare(errors=(409,), responses={200: replies.TrainingJobOut})
@roles_required("engineer")
def cancel_training_job(job_id: int) -> Any:
    """Cancel a queued job, or stop a running one within seconds."""
    db = get_session()
    job = store.cancel(db, store.get_job(db, job_id))
    db.commit()
    return as_json(job)


@declare(errors=(409,), responses={201: replies.TrainingJobOut})
@roles_required("engineer")
def retry_training_job(job_id: int) -> Any:
    """Start a failed or cancelled job again (same product, options and data) as a new job."""
    db = get_session()
    job = store.retry(db, store.get_job(db, job_id), current_principal().username)
    db.commit()
    get_queue().enqueue(job.id)
    return jsonify(as_json(job)), 201


@declare(responses={200: ("text/html", {"type": "string"})})
@roles_required(*VIEWERS)
def training_job_report(job_id: int) -> Any:
    """The finished job's evaluation report (HTML, as `qc evaluate` writes it)."""
    job = store.get_job(get_session(), job_id)
    if not job.report_path:
        raise ServiceError(f"training job {job_id} has no report ({job.state})", 404)
    return send_file(get_storage().resolve(job.report_path), mimetype="text/html")


@declare(query=schemas.CompareQuery, responses={200: replies.ModelComparison})
@roles_required("engineer")
def compare_model(model_id: int) -> Any:
    """A model version against its product's active model on the last ?last=N reviewed results."""
    from qc.service.compare import DEFAULT_LAST, MAX_LAST, compare
    from qc.service.runner import get_inspectors

    db = get_session()
    version = db.get(ModelVersion, model_id)
    if version is None:
        raise ServiceError(f"no model version {model_id}", 404)
    try:
        last = int(request.args.get("last") or DEFAULT_LAST)
    except ValueError:
        raise ServiceError("last must be a whole number") from None
    if not 1 <= last <= MAX_LAST:
        raise ServiceError(f"last must be 1 to {MAX_LAST}")
    result = compare(db, get_storage(), get_inspectors(), current_principal(), version, last)
    return result.as_dict()


ROUTES = (
    ("/training-jobs", start_training_job, "POST"),
    ("/training-jobs", list_training_jobs, "GET"),
    ("/training-jobs/<int:job_id>", get_training_job, "GET"),
    ("/training-jobs/<int:job_id>/cancel", cancel_training_job, "POST"),
    ("/training-jobs/<int:job_id>/retry", retry_training_job, "POST"),
    ("/training-jobs/<int:job_id>/report", training_job_report, "GET"),
    ("/models/<int:model_id>/comparison", compare_model, "GET"),
)


def register(bp: Blueprint) -> None:
    """Add the training-job and teach-mode routes to the api blueprint."""
    for rule, view, method in ROUTES + teach.ROUTES:
        bp.add_url_rule(rule, view_func=view, methods=[method])
