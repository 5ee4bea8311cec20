"""Training jobs in the qc database: create (one running job per product), cancel, retry, mark
stale ones failed, and their JSON view. Plain functions over a Session, like registry.py.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qc.db.models import Product, TrainingJob, utcnow
from qc.service.errors import ServiceError

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
# Why 120 s: the worker beats every HEARTBEAT_S (2 s) even while a long step runs in torch;
# two minutes of silence means the process is gone (killed, machine off).
STALE_AFTER = timedelta(seconds=120)
LOG_LIMIT = 200_000  # characters of log kept per job (the tail)
WORKER_GONE = "the worker stopped while the job ran (killed or crashed); retry the job"


def worker_id() -> str:
    """This process as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def create_job(
    db: Session, product: Product, options: dict, username: str | None,
    dataset_path: str | None = None, retry_of: int | None = None,
) -> TrainingJob:
    """A queued job; 409 while another job of the product is queued or running."""
    busy = db.scalar(
        select(TrainingJob.id).where(
            TrainingJob.product_id == product.id, TrainingJob.state.in_(ACTIVE)
        )
    )
    if busy is not None:
        raise ServiceError(
            f"product {product.name!r} already has a training job (#{busy}) queued or running; "
            "wait for it or cancel it", 409, job=busy,
        )
    job = TrainingJob(
        product_id=product.id, state="queued", options=options, dataset_path=dataset_path,
        progress=0.0, stage="queued", log="", cancel_requested=False, created_by=username,
        retry_of=retry_of, created_at=utcnow(),
    )
    db.add(job)
    db.flush()
    log.info("training job %d queued for %s by %s: %s", job.id, product.name, username, options)
    return job


def get_job(db: Session, job_id: int) -> TrainingJob:
    """The job, else 404; a running job without a recent heartbeat is marked failed first."""
    job = db.get(TrainingJob, job_id)
    if job is None:
        raise ServiceError(f"no training job {job_id}", 404)
    mark_if_stale(job, utcnow())
    return job


def is_stale(job: TrainingJob, now: datetime) -> bool:
    """A running job whose worker has not beaten for STALE_AFTER."""
    beat = job.heartbeat_at or job.started_at
    return job.state == "running" and beat is not None and now - beat > STALE_AFTER


def mark_if_stale(job: TrainingJob, now: datetime) -> bool:
    """Fail a running job whose worker is gone; True if it was."""
    if not is_stale(job, now):
        return False
    finish(job, "failed", error=WORKER_GONE)
    return True


def recover(db: Session, now: datetime | None = None) -> list[int]:
    """At worker start-up: fail running jobs of dead processes on this host, and stale ones."""
    now = now or utcnow()
    host = socket.gethostname()
    failed = []
    for job in db.scalars(select(TrainingJob).where(TrainingJob.state == "running")):
        name, _, pid = (job.worker or "").rpartition(":")
        dead_here = name == host and pid.isdigit() and not _alive(int(pid))
        if dead_here or is_stale(job, now):
            finish(job, "failed", error=WORKER_GONE)
            failed.append(job.id)
    db.commit()
    if failed:
        log.warning("training jobs %s failed: %s", failed, WORKER_GONE)
    return failed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finish(job: TrainingJob, state: str, error: str | None = None) -> None:
    """Set a final state (and the reason, appended to the log)."""
    job.state = state
    job.finished_at = utcnow()
    job.eta_s = None
    if state == "succeeded":
        job.progress, job.stage = 1.0, "done"
    else:
        job.stage = state
    if error:
        job.error = error
        job.log = append_log(job.log, f"{state}: {error}\n")


def append_log(log_text: str | None, more: str) -> str:
    """log + more, keeping the last LOG_LIMIT characters."""
    return ((log_text or "") + more)[-LOG_LIMIT:]


def claim(db: Session, job_id: int) -> bool:
    """queued -> running for this worker (atomic: a job runs once); False if not queued."""
    now = utcnow()
    done = db.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == "queued")
        .values(state="running", worker=worker_id(), started_at=now, heartbeat_at=now,
                stage="starting")
    )
    db.commit()
    return done.rowcount == 1


def cancel(db: Session, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job now; ask a running one to stop (the worker ends it within seconds)."""
    if job.state == "queued":
        finish(job, "cancelled", error="cancelled before it started")
    elif job.state == "running":
        job.cancel_requested = True
    else:
        raise ServiceError(f"training job {job.id} has already {job.state}", 409)
    return job


def retry(db: Session, job: TrainingJob, username: str | None) -> TrainingJob:
    """A new queued job with the same product, options and data as a failed or cancelled one."""
    if job.state not in ("failed", "cancelled"):
        raise ServiceError(f"only failed or cancelled jobs can be retried; {job.id} is {job.state}",
                           409)
    return create_job(db, job.product, dict(job.options), username, job.dataset_path, job.id)


def product_jobs(db: Session, product_id: int, limit: int = 20) -> list[TrainingJob]:
    """A product's latest jobs, newest first (stale ones marked failed)."""
    jobs = db.scalars(
        select(TrainingJob).where(TrainingJob.product_id == product_id)
        .order_by(TrainingJob.id.desc()).limit(limit)
    ).all()
    now = utcnow()
    for job in jobs:
        mark_if_stale(job, now)
    return list(jobs)


def job_dict(job: TrainingJob, report_url: str | None = None) -> dict:
    """JSON view of a job."""
    iso = lambda t: t.isoformat() if t else None  # noqa: E731
    version = job.model_version
    return {
        "id": job.id,
        "product": job.product.name,
        "state": job.state,
        "progress": round(job.progress, 4),
        "stage": job.stage,
        "eta_s": None if job.eta_s is None else round(job.eta_s, 1),
        "options": job.options,
        "dataset": "upload" if job.dataset_path else "reviewed results and taught photos",
        "model_id": version.id if version else None,
        "model_version": version.version if version else None,
        "report_url": report_url,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "retry_of": job.retry_of,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }
