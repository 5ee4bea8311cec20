"""The job queue: Huey with its SQL storage on the qc database (peewee; SQLite or PostgreSQL), so
a worker on another machine only needs the database URL. The queue carries job ids only; state
lives in the training_jobs table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app
from huey import Huey
from huey.api import TaskWrapper
from huey.contrib.sql_huey import SqlStorage
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

QUEUE_NAME = "qc-training"
EXTENSION = "qc.jobs"
TABLE_PREFIX = "huey_"  # Huey's tables (kv, task, ...) get a prefix in the qc database


class QueueStorage(SqlStorage):
    """Huey's SQL storage with its tables named huey_* instead of kv, task, schedule, counter."""

    def create_models(self):
        models = super().create_models()
        for model in models:
            model._meta.set_table_name(TABLE_PREFIX + model._meta.table_name)
        task = models[2]
        task._meta.indexes = []  # re-made: the index was bound to the old table name
        task.add_index(task.priority.desc(), task.id)
        return models


def peewee_database(url: str):
    """The peewee database for a SQLAlchemy URL (sqlite:///path or postgresql+psycopg://...)."""
    from peewee import SqliteDatabase
    from playhouse.postgres_ext import Psycopg3Database

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteDatabase(path, pragmas={"journal_mode": "wal", "busy_timeout": 10000})
    if parsed.get_backend_name() == "postgresql":
        return Psycopg3Database(
            parsed.database, host=parsed.host, port=parsed.port, user=parsed.username,
            password=parsed.password, **dict(parsed.query),
        )
    raise ValueError(f"training jobs need SQLite or PostgreSQL, not {parsed.get_backend_name()}")


def queue_url(config: dict) -> str:
    """QUEUE_URL, else the qc database; on SQLite a queue.sqlite3 beside it (the worker's polls
    then never take the write lock inspections need)."""
    if config.get("QUEUE_URL"):
        return config["QUEUE_URL"]
    url = make_url(config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(url.set(database=str(Path(url.database).with_name("queue.sqlite3"))))
    return config["DATABASE_URL"]


def make_queue(app: Flask, immediate: bool = False) -> JobQueue:
    """The app's queue (QC_QUEUE_URL, default: the qc database) with the training task."""
    huey = Huey(
        QUEUE_NAME,
        storage_class=QueueStorage,
        database=peewee_database(queue_url(app.config)),
        results=False,  # the outcome is in training_jobs
        utc=True,
        immediate=immediate,
    )

    def train(job_id: int) -> None:
        from qc.service.jobs.runner import run_job

        run_job(app, job_id)

    return JobQueue(huey, huey.task(name="train", retries=0)(train))


@dataclass
class JobQueue:
    """The Huey instance and its training task."""

    huey: Huey
    train: TaskWrapper

    def enqueue(self, job_id: int) -> None:
        """Put a job id on the queue (a worker picks it up)."""
        self.train(job_id)


def get_queue() -> JobQueue:
    """The current app's queue (made on first use)."""
    app = current_app._get_current_object()
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = make_queue(app)
    return app.extensions[EXTENSION]
