"""The training worker `qc serve` and `qc demo` start beside the web service on a single box
(`--no-worker` to leave it to a `qc worker` elsewhere)."""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import subprocess
import sys

from flask import Flask

log = logging.getLogger(__name__)


def start_local_worker(app: Flask) -> subprocess.Popen | None:
    """A `qc worker` child process on the app's database and data folder, stopped at exit;
    None (with a warning) where torch is missing."""
    if importlib.util.find_spec("torch") is None:
        log.warning("no training worker: torch is missing (pip install 'qc[train]'), or run "
                    "`qc worker` on another machine against this database")
        return None
    env = {
        **os.environ,
        "QC_DATABASE_URL": app.config["DATABASE_URL"],
        "QC_DATA_DIR": str(app.config["DATA_DIR"]),
        "QC_INSTANCE_PATH": app.instance_path,
        "QC_AUTO_MIGRATE": "0",
        "QC_WORKER_PARENT": str(os.getpid()),  # the worker ends when this process does
    }
    if app.config.get("QUEUE_URL"):
        env["QC_QUEUE_URL"] = app.config["QUEUE_URL"]
    child = subprocess.Popen([sys.executable, "-m", "qc.cli", "worker"], env=env)
    atexit.register(stop, child)
    log.info("training worker started (pid %d)", child.pid)
    return child


def stop(child: subprocess.Popen) -> None:
    """Stop a worker child (a job it was running is failed by the next worker's start-up)."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
