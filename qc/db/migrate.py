"""Run Alembic migrations from code (`qc db upgrade`, app start-up, tests)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from qc.db.session import make_engine

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """Alembic Config for the packaged migrations, pointed at url."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at url up to revision (creating it on an empty database)."""
    with _file_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at url to revision ('base' drops everything)."""
    with _file_lock(url):
        command.downgrade(alembic_config(url), revision)


def current_tables(url: str) -> set[str]:
    """Names of the tables present (a quick check for tests and `qc db status`)."""
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(url: str) -> Iterator[None]:
    """Serialize migrations of one SQLite file across processes (PostgreSQL locks in env.py)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    lock_path = Path(parsed.database).with_suffix(".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
