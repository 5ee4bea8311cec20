"""A real `qc worker` process: killed with SIGKILL mid-job, the job ends failed with its log (at
the next worker's start-up) and a retry succeeds."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qc.db.models import TrainingJob
from qc.service.database import get_database
from tests.qc.service.jobs.conftest import FAST

ROOT = Path(__file__).resolve().parents[4]
WAIT_S = 240.0  # a 2-core CI box shared with other tests trains slowly


def worker_process(app) -> subprocess.Popen:
    env = {**os.environ, "QC_DATABASE_URL": app.config["DATABASE_URL"],
           "QC_DATA_DIR": app.config["DATA_DIR"], "QC_INSTANCE_PATH": app.instance_path,
           "QC_SECRET_KEY": app.config["SECRET_KEY"], "QC_AUTO_MIGRATE": "0"}
    return subprocess.Popen([sys.executable, "-m", "qc.cli", "worker"], cwd=ROOT, env=env)


def wait_for(app, job_id: int, done, what: str) -> TrainingJob:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with get_database().session() as db:
            job = db.get(TrainingJob, job_id)
            if done(job):
                db.expunge(job)
                return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never {what}")


def test_kill_9_mid_job_fails_it_with_log_and_retry_succeeds(app, client, plant, queue,
                                                             dataset_zip):
    form = {"product": plant.product, **FAST, "epochs": "1000",
            "max_minutes": "0.3", "dataset": (io.BytesIO(dataset_zip), "d.zip")}
    job = client.post("/api/v1/training-jobs", data=form, headers=plant.auth("engineer"))
    job_id = job.get_json()["id"]
    worker = worker_process(app)
    try:
        with app.app_context():
            running = wait_for(app, job_id, lambda j: j.state == "running" and j.progress > 0.05,
                               "trained")
            assert running.worker.endswith(f":{worker.pid}")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            worker = worker_process(app)  # its start-up finds the dead worker's job
            failed = wait_for(app, job_id, lambda j: j.state == "failed", "failed")
            assert "worker stopped while the job ran" in failed.error
            assert "training on" in failed.log and failed.log.rstrip().endswith("retry the job")

            retry = client.post(f"/api/v1/training-jobs/{job_id}/retry",
                                headers=plant.auth("engineer")).get_json()
            done = wait_for(app, retry["id"], lambda j: j.state in ("succeeded", "failed"),
                            "finished")
            assert done.state == "succeeded", done.log[-3000:]
            assert done.model_version_id is not None
    finally:
        worker.kill()
        worker.wait(10)


def children(pid: int) -> list[int]:
    """Processes whose parent is pid (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def workers(pid: int) -> list[int]:
    """The `qc worker` children of pid (gunicorn's HTTP worker is a child too)."""
    found = []
    for child in children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[-2:-1] == [b"worker"]:
                found.append(child)
    return found


def test_serve_starts_a_worker_that_ends_with_it(tmp_path):
    from tests.edge.processes import ServiceProcess

    service = ServiceProcess(tmp_path)
    service.serve_args = []  # the single-box default: a worker beside the service
    service.start()
    try:
        deadline = time.monotonic() + 30
        while not workers(service.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        (worker,) = workers(service.proc.pid)  # beside gunicorn's own worker process
    finally:
        service.kill()  # SIGKILL: no atexit clean-up runs
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker, os.WNOHANG)
    assert not Path(f"/proc/{worker}").exists(), "the worker outlived its service"
