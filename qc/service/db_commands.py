"""`qc db`: migrate the database, apply image retention, rebuild the statistics pre-aggregate."""

from __future__ import annotations

import logging

import click

from qc.service.cli_context import app_from_context, app_session

log = logging.getLogger(__name__)


@click.group()
def db() -> None:
    """Database upkeep: upgrade, retention, rebuild-counts."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (run once before starting several gunicorn hosts)."""
    from qc.db import migrate

    app = app_from_context()
    migrate.upgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@db.command("retention")
def db_retention() -> None:
    """Delete images past QC_RETAIN_PASS_DAYS / QC_RETAIN_FAIL_DAYS now (the service also does it
    by itself every QC_RETENTION_EVERY_HOURS)."""
    import time

    from qc.service.housekeeping import retain

    attempt = retain(app_from_context(), time.time())
    if attempt.result is None:
        click.echo("retention: another process is running it right now; skipped")
        return
    result = attempt.result
    click.echo(f"retention: {result.files} files of {result.inspections} inspections removed")


@db.command("rebuild-counts")
def db_rebuild_counts() -> None:
    """Recompute the hourly counts statistics read (after a restore or manual edits)."""
    from qc.service.ingest import rebuild_counts

    with app_session() as (_app, session):
        n = rebuild_counts(session)
        session.commit()
    click.echo(f"counts rebuilt from {n} inspections")
