"""`qc worker`: the process that runs training jobs (Huey's consumer, one job at a time). It can
run on the plant server (`qc serve` and `qc demo` start one) or on a GPU PC against the same
PostgreSQL and data folder. At start-up, jobs left running by a dead worker are marked failed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import click
from flask import Flask

import training.config  # noqa: F401  (the worker trains: this import needs the train extra)
from qc.service.cli_context import app_from_context
from qc.service.database import get_database
from qc.service.jobs import store
from qc.service.jobs.queue import make_queue

log = logging.getLogger(__name__)

# Why 1 s: a job waits at most this long before a worker picks it up, and an idle worker
# costs one cheap query per second.
MAX_POLL_S = 1.0


def run_worker(app: Flask) -> None:
    """Recover jobs of dead workers, then consume the queue until SIGINT/SIGTERM."""
    with app.app_context():
        with get_database().session() as db:
            store.recover(db)
        queue = make_queue(app)
    consumer = queue.huey.create_consumer(
        workers=1,  # one job per process: progress hooks and torch threads are process-wide
        periodic=False, max_delay=MAX_POLL_S, worker_type="thread",
    )
    parent = os.environ.get("QC_WORKER_PARENT")
    if parent and parent.isdigit():
        threading.Thread(target=_end_with_parent, args=(int(parent),), daemon=True).start()
    log.info("training worker %s waiting for jobs", store.worker_id())
    consumer.run()


def _end_with_parent(pid: int) -> None:
    """A worker started by `qc serve`/`qc demo` stops when that process is gone (even killed)."""
    while os.getppid() == pid:
        time.sleep(1.0)
    log.warning("parent process %d is gone: stopping", pid)
    os.kill(os.getpid(), signal.SIGTERM)


@click.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run training jobs started from the browser or POST /api/v1/training-jobs."""
    run_worker(app_from_context(ctx))
