"""Teach mode: photos an operator captures for a product that has no model yet, marked good or
defect + type. They are training images (taught_photos), not inspections: no verdict, not in
the statistics. A job without a zip trains on them together with the reviewed results.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qc.db.models import Product, TaughtPhoto, utcnow
from qc.imaging import ImageError, read_image
from qc.service import registry, replies, schemas
from qc.service.auth import current_principal, roles_required
from qc.service.database import get_session
from qc.service.dataset import safe_name
from qc.service.errors import ServiceError
from qc.service.jobs.options import training_choices
from qc.service.openapi import declare
from qc.service.storage import get_storage, sniff_suffix

log = logging.getLogger(__name__)

TEACHERS = ("operator", "engineer")


def taught_counts(db: Session, product: Product) -> dict[str, int]:
    """Taught photos per label."""
    rows = db.execute(
        select(TaughtPhoto.label, func.count()).where(TaughtPhoto.product_id == product.id)
        .group_by(TaughtPhoto.label)
    )
    return {label: int(n) for label, n in rows}


def counts(db: Session, product: Product) -> dict:
    """Taught photos per label and what the default training mode needs."""
    by_label = taught_counts(db, product)
    good = by_label.pop("good", 0)
    choices = training_choices()
    need = None
    if choices is not None:
        mode = choices.default_mode
        need = {"mode": mode, "good": choices.min_good[mode], "defect": choices.min_defect[mode]}
    return {"product": product.name, "good": good, "defect": sum(by_label.values()),
            "defect_types": dict(sorted(by_label.items())), "need": need}


def parse_label(raw: str | None) -> str:
    """'good', or a defect type made safe as a folder name (400 when missing)."""
    text = (raw or "").strip()
    if not text:
        raise ServiceError("give label: good, or the defect type (e.g. scratch)")
    if len(text) > 64:
        raise ServiceError("label must be at most 64 characters")
    label = safe_name(text.lower(), "")
    if not label or label == "defect":
        raise ServiceError(f"label {text!r}: say good, or name the defect type (e.g. scratch)")
    return label


@declare(form=schemas.TeachForm, responses={201: replies.TaughtCounts})
@roles_required(*TEACHERS)
def teach_photo(name: str) -> Any:
    """Add a training photo: multipart image + label (good or a defect type)."""
    db = get_session()
    product = registry.find(db, Product, name, "product")
    label = parse_label(request.form.get("label"))
    upload = request.files.get("image")
    data = upload.read() if upload else b""
    if not data:
        raise ServiceError("send the photo as multipart/form-data file field 'image'")
    try:
        read_image(data, max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageError as exc:
        raise ServiceError(f"image refused: {exc}") from None
    relative = f"taught/{product.id}/{uuid.uuid4().hex}.{sniff_suffix(data)}"
    photo = TaughtPhoto(product_id=product.id, label=label, taught_by=current_principal().username,
                        image_path=get_storage().save_bytes(relative, data), taught_at=utcnow())
    db.add(photo)
    db.commit()
    log.info("%s: photo taught as %s by %s", product.name, label, photo.taught_by)
    return jsonify({"id": photo.id, "label": label, **counts(db, product)}), 201


@declare(responses={200: replies.TaughtCounts})
@roles_required(*TEACHERS)
def taught_photos(name: str) -> Any:
    """How many photos were taught for a product, per label, against the trainer's minimum."""
    db = get_session()
    return counts(db, registry.find(db, Product, name, "product"))


ROUTES = (
    ("/products/<name>/taught-photos", teach_photo, "POST"),
    ("/products/<name>/taught-photos", taught_photos, "GET"),
)

