"""The app and database session behind a `qc` command: ctx.obj["app"] in tests, else
create_app() from the QC_* environment."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click
from flask import Flask
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def app_from_context(ctx: click.Context | None = None) -> Flask:
    """The app given by the caller (tests) or a new one from the environment."""
    from qc.service import create_app

    ctx = ctx or click.get_current_context()
    app = ctx.find_object(dict).get("app") if ctx.find_object(dict) else None
    return app or create_app()


@contextlib.contextmanager
def app_session() -> Iterator[tuple[Flask, Session]]:
    """(app, session) inside the app context; ServiceErrors become click errors."""
    from qc.service.database import get_session
    from qc.service.errors import ServiceError

    app = app_from_context()
    with app.app_context():
        try:
            yield app, get_session()
        except ServiceError as exc:
            raise click.ClickException(exc.message) from None
