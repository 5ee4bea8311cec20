"""Upkeep the service does by itself: image retention in a background thread, first a few minutes
after start, then every RETENTION_EVERY_HOURS (0 turns it off for plants that run it from cron).

Several workers or hosts share the work without a table for it: a lock keeps runs from
overlapping (a PostgreSQL advisory lock, or a file lock next to the SQLite database), and a stamp
of the last run in the data folder lets workers sharing that folder skip a period another one has
already done. A run that slips through anyway is harmless: apply_retention is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from qc.db import Database
from qc.service.database import get_database, get_session
from qc.service.storage import RetentionResult, Storage, apply_retention, get_storage

try:
    import fcntl
except ImportError:  # Windows: no file locks; runs overlap at worst, and retention is idempotent
    fcntl = None

log = logging.getLogger(__name__)

EXTENSION = "qc.retention"
PG_LOCK_ID = 7_263_002  # advisory lock of retention runs (7_263_001 serializes migrations)
STAMP = ".retention-last-run"  # in DATA_DIR: epoch seconds of the last completed run


def seconds_until_due(
    now: float, started: float, last_run: float | None, first_delay_s: float, every_s: float
) -> float:
    """Seconds until retention is due (0: now): first_delay_s after start, then every_s after
    the last run. A last run in the future (the clock was set back) does not postpone it."""
    if last_run is None:
        return max(0.0, started + first_delay_s - now)
    if last_run > now:
        return 0.0
    return max(0.0, last_run + every_s - now)


@dataclass
class RetentionRun:
    """One attempt: result is None when it was skipped (another process holds the lock, or ran
    it at last_run less than a period ago)."""

    last_run: float
    result: RetentionResult | None = None


def retain(app: Flask, now: float, every_s: float | None = None) -> RetentionRun:
    """Apply the app's retention rule under the retention lock and stamp the run; with every_s,
    skip it when the stamp says it ran less than every_s ago (without: always run, `qc db
    retention`)."""
    with app.app_context():
        storage = get_storage()
        with retention_lock(get_database()) as held:
            if not held:
                log.info("retention: another process is running it; skipped")
                return RetentionRun(last_run=now)
            stamp = read_stamp(storage)  # the period is counted from the last run anyone did
            if every_s is not None and seconds_until_due(now, now, stamp, 0, every_s) > 0:
                log.debug("retention: done at %s; skipped", _iso(stamp))
                return RetentionRun(last_run=stamp)
            result = apply_retention(
                get_session(),
                storage,
                datetime.fromtimestamp(now, timezone.utc),
                app.config["RETAIN_PASS_DAYS"],
                app.config["RETAIN_FAIL_DAYS"],
            )
            write_stamp(storage, now)
    return RetentionRun(last_run=now, result=result)


@contextlib.contextmanager
def retention_lock(database: Database) -> Iterator[bool]:
    """Take the retention lock if it is free; yields whether this caller holds it."""
    if database.dialect == "postgresql":
        with _advisory_lock(database) as held:
            yield held
        return
    path = make_url(database.url).database
    if database.dialect != "sqlite" or path in (None, "", ":memory:") or fcntl is None:
        yield True  # no other process can reach the database, or no file locks (Windows)
        return
    with open(Path(path).with_suffix(".retention-lock"), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(database: Database) -> Iterator[bool]:
    conn = database.engine.connect()
    try:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": PG_LOCK_ID}))
        conn.commit()  # the lock belongs to the connection, not to this transaction
        try:
            yield held
        finally:
            if held:
                _advisory_unlock(conn)
    finally:
        conn.close()


def _advisory_unlock(conn: Connection) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
        conn.commit()
    except Exception:
        log.warning("could not release the retention lock; dropping its connection", exc_info=True)
        conn.invalidate()  # closing the server session releases the lock; never pool it


def read_stamp(storage: Storage) -> float | None:
    """When retention last completed on this data folder (None: never, or unreadable)."""
    try:
        return float((storage.root / STAMP).read_text().strip())
    except (OSError, ValueError):
        return None


def write_stamp(storage: Storage, when: float) -> None:
    """Record a completed retention run."""
    storage.save_bytes(STAMP, f"{when:.3f}\n".encode())


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


class RetentionWorker:
    """A daemon thread applying retention on schedule until stopped or its app is gone."""

    def __init__(self, app: Flask, every_s: float, first_delay_s: float):
        self.every_s = every_s
        self.first_delay_s = first_delay_s
        self.started = time.time()
        self.last_run: float | None = None
        self.stop_event = threading.Event()
        self._app = weakref.ref(app)  # the thread must not keep a discarded app alive
        weakref.finalize(app, self.stop_event.set)
        self.thread = threading.Thread(target=self.run, name="qc-retention", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()
        log.debug(
            "retention runs every %g h, first in %g s", self.every_s / 3600, self.first_delay_s
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (a run in progress finishes its batch)."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def run(self) -> None:
        """Loop until stopped: wait until due, run, repeat."""
        while not self.stop_event.is_set():
            wait = seconds_until_due(
                time.time(), self.started, self.last_run, self.first_delay_s, self.every_s
            )
            if wait > 0:
                self.stop_event.wait(wait)
                continue
            self.last_run = self.run_once()

    def run_once(self) -> float:
        """One attempt; returns the time of the last run to count the next period from."""
        now = time.time()
        app = self._app()
        if app is None:
            self.stop_event.set()
            return now
        try:
            return retain(app, now, self.every_s).last_run
        except Exception:  # keep the thread alive: the next period tries again
            log.exception("retention failed; next try in %g h", self.every_s / 3600)
            return now


def init_app(app: Flask) -> None:
    """Start the retention thread (not under TESTING, nor with RETENTION_EVERY_HOURS = 0)."""
    every_h = app.config["RETENTION_EVERY_HOURS"]
    if app.config.get("TESTING") or every_h <= 0:
        log.debug("retention thread off (TESTING or QC_RETENTION_EVERY_HOURS=0)")
        return
    worker = RetentionWorker(app, every_h * 3600, app.config["RETENTION_FIRST_DELAY_S"])
    app.extensions[EXTENSION] = worker
    worker.start()


def stop(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's retention thread, if it has one."""
    worker = app.extensions.get(EXTENSION)
    if worker is not None:
        worker.stop(timeout)
