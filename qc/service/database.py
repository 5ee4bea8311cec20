"""The app's database: one Database per app, one session per request, closed at teardown
(rolled back if the view did not commit). Views commit once, at the end.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from qc.db import Database
from qc.db import migrate as migrations

log = logging.getLogger(__name__)

EXTENSION = "qc.db"


def init_app(app: Flask) -> None:
    """Bind a Database to the app; migrate it first when AUTO_MIGRATE is on."""
    if app.config["AUTO_MIGRATE"]:
        migrations.upgrade(app.config["DATABASE_URL"])
    app.extensions[EXTENSION] = Database(app.config["DATABASE_URL"])
    app.teardown_appcontext(_close_session)


def get_database() -> Database:
    """The current app's Database."""
    return current_app.extensions[EXTENSION]


def get_session() -> Session:
    """The session of the current request (or CLI app context)."""
    if "db_session" not in g:
        g.db_session = get_database().session()
    return g.db_session


def rollback() -> None:
    """Roll back the current session, if any (500 handler)."""
    session = g.get("db_session")
    if session is not None:
        session.rollback()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()  # rolls back anything not committed
