"""The engineer's models page: per product the active model, its versions with their metrics,
training jobs with live progress, activation history, and the comparison shown before a new
model is activated. Actions go through the JSON API (training jobs, activate, roll back).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, abort, render_template, request
from sqlalchemy import select

from qc.db.models import ModelActivation, ModelVersion, TrainingJob
from qc.service.auth import current_principal
from qc.service.compare import DEFAULT_LAST, MAX_LAST, compare
from qc.service.database import get_session
from qc.service.jobs.api import product_counts
from qc.service.jobs.options import training_choices
from qc.service.pages.common import page_roles, products
from qc.service.registry import model_dict
from qc.service.runner import get_inspectors
from qc.service.storage import get_storage

log = logging.getLogger(__name__)

bp = Blueprint("models", __name__)


@bp.get("/models")
@page_roles("engineer")
def page() -> Any:
    """A product's models, jobs and activation history (?product=NAME)."""
    db = get_session()
    all_products = products(db)
    name = request.args.get("product") or (all_products[0].name if all_products else "")
    product = next((p for p in all_products if p.name == name), None)
    versions, history, counts = [], [], (0, 0)
    if product is not None:
        versions = [model_dict(v, product.active_model_id) for v in db.scalars(
            select(ModelVersion).where(ModelVersion.product_id == product.id)
            .order_by(ModelVersion.id.desc()))]
        history = db.scalars(
            select(ModelActivation).where(ModelActivation.product_id == product.id)
            .order_by(ModelActivation.at.desc(), ModelActivation.id.desc()).limit(50)).all()
        counts = product_counts(db, product)
    by_id = {v["id"]: v["version"] for v in versions}
    return render_template(
        "models.html", products=[p.name for p in all_products], product=product,
        versions=versions, history=history, by_id=by_id, good=counts[0], defects=counts[1],
        choices=training_choices(),
    )


@bp.get("/models/<int:model_id>/compare")
@page_roles("engineer")
def compare_page(model_id: int) -> Any:
    """The model against the product's active one on the last N reviewed results (?last=N)."""
    db = get_session()
    version = db.get(ModelVersion, model_id)
    if version is None:
        abort(404, f"no model version {model_id}")
    last = _last(request.args.get("last"))
    result = compare(db, get_storage(), get_inspectors(), current_principal(), version, last)
    job = db.scalar(select(TrainingJob).where(TrainingJob.model_version_id == version.id)
                    .order_by(TrainingJob.id.desc()).limit(1))
    return render_template("compare.html", version=version, product=version.product,
                           c=result, last=last, job=job,
                           is_active=version.product.active_model_id == version.id)


def _last(raw: str | None) -> int:
    try:
        return min(max(int(raw or DEFAULT_LAST), 1), MAX_LAST)
    except ValueError:
        return DEFAULT_LAST


def init_app(app: Flask) -> None:
    """Register the models page."""
    app.register_blueprint(bp)
