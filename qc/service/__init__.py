"""The qc plant service: a Flask app that records every inspection and answers statistics.

Production: `gunicorn -w 4 'qc.service:create_app()'` (see docs/service.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from qc.service import config as settings

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from QC_* environment variables, overridden by test_config
    (which may also name the INSTANCE_PATH)."""
    instance = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("QC_INSTANCE_PATH")
    instance = os.path.abspath(instance) if instance else None  # Flask needs it absolute
    app = Flask(__name__, instance_path=instance, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(settings.from_env(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.load_secret_key(app.instance_path)
    settings.validate(app.config)
    _init_extensions(app)
    return app


def _init_extensions(app: Flask) -> None:
    from qc.service import (
        api,
        auth,
        database,
        documents,
        errors,
        housekeeping,
        pages,
        photos,
        security,
    )
    from qc.service.runner import InspectorCache
    from qc.service.storage import Storage

    database.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    documents.init_app(app)
    photos.init_app(app)
    app.extensions["qc.storage"] = Storage(app.config["DATA_DIR"])
    app.extensions["qc.inspectors"] = InspectorCache(app.config["INFERENCE_THREADS"])
    app.register_blueprint(api.bp)
    pages.init_app(app)
    housekeeping.init_app(app)
    log.debug(
        "app ready: database %s, data %s",
        _redact(app.config["DATABASE_URL"]),
        app.config["DATA_DIR"],
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
