"""The engineer's review page: check flagged and failed results, correct their labels, and
export the reviewed photos as a training set for `qc train` (closing the retraining loop).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, render_template, request
from sqlalchemy import func, select

from qc.db.models import Inspection, Product
from qc.service.auth import current_principal
from qc.service.database import get_session
from qc.service.dataset import label_counts, photos_query, send_zip
from qc.service.pages.common import defect_types, page_roles, products
from qc.service.queries import Filters, file_url, model_label, request_filters, to_dict

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__)
PAGE_SIZE = 48
SHOW = {  # what the list shows -> extra conditions
    "flagged": lambda q: q.where(Inspection.flagged_by.is_not(None)),
    "failed": lambda q: q.where(Inspection.verdict == "fail", Inspection.review.is_(None)),
    "unreviewed": lambda q: q.where(Inspection.review.is_(None)),
    "all": lambda q: q,
}


def page_number(raw: str | None) -> int:
    """?page as a 1-based number; anything else (missing, negative, not a number) is page 1."""
    try:
        return max(int(raw or 1), 1)
    except ValueError:
        return 1


def _card(insp: Inspection) -> dict:
    """An inspection as the review page shows it, with the label the model gave it."""
    item = to_dict(insp, file_url)
    item["model_label"] = model_label(insp.verdict, insp.defect_type)
    return item


@bp.get("/review")
@page_roles("engineer")
def page() -> Any:
    """Results with photos, newest first, PAGE_SIZE a page (?page=N), and the dataset export."""
    db = get_session()
    all_products = products(db)
    name = request.args.get("product") or (all_products[0].name if all_products else "")
    show = request.args.get("show") if request.args.get("show") in SHOW else "flagged"
    number = page_number(request.args.get("page"))
    product = db.scalar(select(Product).where(Product.name == name)) if name else None
    first = (number - 1) * PAGE_SIZE + 1
    items, total = [], 0
    if product is not None:
        query = SHOW[show](photos_query(Filters(product=product.name), current_principal()))
        total = db.scalar(query.with_only_columns(func.count(Inspection.id))) or 0
        if first <= total:  # past the end: no rows query (and no offset too big for the database)
            # The id breaks ties between equal timestamps, so pages neither overlap nor skip.
            query = query.order_by(Inspection.inspected_at.desc(), Inspection.id.desc())
            query = query.offset(first - 1).limit(PAGE_SIZE)
            items = [_card(i) for i in db.scalars(query)]
    reviewed = Filters(product=name, reviewed=True)
    return render_template(
        "review.html",
        products=[p.name for p in all_products],
        product=name,
        show=show,
        shows=list(SHOW),
        items=items,
        page=number,
        total=total,
        first=first,
        last=first + len(items) - 1,
        last_page=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        labels=["good", *defect_types(product)],
        export_counts=label_counts(db, reviewed, current_principal()) if product else {},
    )


@bp.get("/review/dataset.zip")
@page_roles("engineer")
def dataset() -> Any:
    """The photos of ?product (reviewed only unless reviewed=false) in `qc train` layout."""
    return send_zip(request_filters())


def init_app(app: Flask) -> None:
    """Register the review page."""
    app.register_blueprint(bp)
