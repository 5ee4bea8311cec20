"""Engine and session handling: SQLite gets WAL and foreign keys on every connection; a Flask app
gets one session per application context, closed (rolled back if uncommitted) at teardown.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

SQLITE_BUSY_MS = 10_000  # wait for a concurrent writer (gunicorn workers) instead of failing


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite URLs get their folder created and connection pragmas set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
        url = parsed.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds password and key hashes);
    SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            log.warning("%s is readable by others; chmod 600 it", path)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; safe with WAL
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


class Database:
    """The engine and session factory of one app (or one CLI/bench run)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def session(self) -> Session:
        """A new session (the caller closes it)."""
        return self.sessionmaker()

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
