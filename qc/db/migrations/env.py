"""Alembic environment: migrates the database named by the caller (qc.db.migrate) or `-x url=`."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import text

from qc.db.models import Base
from qc.db.session import make_engine

log = logging.getLogger(__name__)

config = context.config
target_metadata = Base.metadata
PG_LOCK_ID = 7_263_001  # advisory lock: several gunicorn workers may start at once


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: set QC_DATABASE_URL or pass -x url=...")
    return url


def run_offline() -> None:
    """Emit SQL instead of running it."""
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate over a live connection (render_as_batch lets SQLite alter tables)."""
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata, render_as_batch=True
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text(f"SELECT pg_advisory_xact_lock({PG_LOCK_ID})"))
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
