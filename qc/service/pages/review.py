"""The engineer's review page: check flagged and failed results, correct their labels, and
export the reviewed photos as a training set for `qc train` (closing the retraining loop).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, render_template, request, send_file, url_for
from sqlalchemy import select

from qc.db.models import Inspection, Product, utcnow
from qc.service.auth import current_principal
from qc.service.database import get_session
from qc.service.errors import ServiceError
from qc.service.pages import export
from qc.service.pages.common import defect_types, page_roles, products
from qc.service.queries import Filters, to_dict
from qc.service.registry import find
from qc.service.storage import get_storage

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__)
PAGE_SIZE = 48
SHOW = {  # what the list shows -> extra conditions
    "flagged": lambda q: q.where(Inspection.review == "disagree"),
    "failed": lambda q: q.where(Inspection.verdict == "fail", Inspection.review.is_(None)),
    "unreviewed": lambda q: q.where(Inspection.review.is_(None)),
    "all": lambda q: q,
}


def _file_url(inspection_id: str, kind: str) -> str:
    return url_for("api.inspection_file", inspection_id=inspection_id, kind=kind)


def _card(insp: Inspection) -> dict:
    """An inspection as the review page shows it, with the label the model gave it."""
    item = to_dict(insp, _file_url)
    item["model_label"] = "good" if insp.verdict == "pass" else (insp.defect_type or "defect")
    return item


@bp.get("/review")
@page_roles("engineer")
def page() -> Any:
    """Results with photos, newest first, and the dataset export."""
    db = get_session()
    all_products = products(db)
    name = request.args.get("product") or (all_products[0].name if all_products else "")
    show = request.args.get("show") if request.args.get("show") in SHOW else "flagged"
    product = db.scalar(select(Product).where(Product.name == name)) if name else None
    items = []
    if product is not None:
        query = export.photos_query(Filters(product=product.name), current_principal())
        query = SHOW[show](query).order_by(Inspection.inspected_at.desc()).limit(PAGE_SIZE)
        items = [_card(i) for i in db.scalars(query)]
    reviewed = Filters(product=name, reviewed=True)
    return render_template(
        "review.html",
        products=[p.name for p in all_products],
        product=name,
        show=show,
        shows=list(SHOW),
        items=items,
        labels=["good", *defect_types(product)],
        export_counts=export.label_counts(db, reviewed, current_principal()) if product else {},
    )


@bp.get("/review/dataset.zip")
@page_roles("engineer")
def dataset() -> Any:
    """The photos of ?product (reviewed only unless reviewed=false) in `qc train` layout."""
    db = get_session()
    filters = Filters.from_args(request.args)
    if not filters.product:
        raise ServiceError("choose a product to export")
    find(db, Product, filters.product, "product")
    if filters.reviewed is None:
        filters.reviewed = True
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", filters.product).strip("._") or "product"
    root = f"{safe}-dataset-{utcnow():%Y%m%d}"
    spool = export.build_training_zip(db, get_storage(), filters, current_principal(), root)
    return send_file(spool, mimetype="application/zip", as_attachment=True,
                     download_name=f"{root}.zip")


def init_app(app: Flask) -> None:
    """Register the review page."""
    app.register_blueprint(bp)
