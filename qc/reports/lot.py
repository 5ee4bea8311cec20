"""The lot certificate of conformance's payload: every unit of a lot with its verdict, score,
model version and review override, and the lot's summary."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, Product, Station
from qc.service.errors import ServiceError
from qc.service.queries import model_label
from qc.service.schemas import TEXT_MAX

log = logging.getLogger(__name__)

KIND = "lot-certificate"
FORMAT = 1
MAX_UNITS = 10_000  # about 200 pages of PDF; larger lots: split by product


def build(db: Session, lot: str, product: str | None, issued_by: str, now: datetime) -> dict:
    """The certificate's payload (to be signed); unknown lots raise ServiceError 404."""
    if not lot or len(lot) > TEXT_MAX:
        raise ServiceError(f"a lot name has 1 to {TEXT_MAX} characters", 400)
    i = Inspection
    query = (select(i, Product.name, Station.name)
             .join(Product, i.product_id == Product.id)
             .outerjoin(Station, i.station_id == Station.id)
             .where(i.lot == lot).order_by(i.inspected_at, i.id).limit(MAX_UNITS + 1))
    if product:
        query = query.where(Product.name == product)
    rows = db.execute(query).all()
    if not rows:
        where = f" of product {product!r}" if product else ""
        raise ServiceError(f"no inspections in lot {lot!r}{where}", 404)
    if len(rows) > MAX_UNITS:
        raise ServiceError(f"lot {lot!r} has more than {MAX_UNITS:,} units; ask for one "
                           "product at a time (?product=NAME)", 400)
    units = [_unit(insp, product_name, station) for insp, product_name, station in rows]
    return {"document": KIND, "format": FORMAT, "issued_at": now.isoformat(),
            "issued_by": issued_by, "lot": lot, "product": product,
            "summary": summary(units), "units": units}


def _unit(insp: Inspection, product: str, station: str | None) -> dict:
    model = model_label(insp.verdict, insp.defect_type)
    final = insp.review_label if insp.review == "disagree" and insp.review_label else model
    return {"id": insp.id, "serial": insp.serial, "product": product, "station": station,
            "inspected_at": insp.inspected_at.isoformat(), "verdict": insp.verdict,
            "score": round(insp.score, 6), "defect_type": insp.defect_type,
            "model_version": insp.model_version, "review": insp.review,
            "reviewed_by": insp.reviewed_by, "final_label": final,
            "conforming": final == "good"}


def summary(units: list[dict]) -> dict:
    """Counts of the lot: verdicts, reviews and overrides, final conformance."""
    n = len(units)
    failed = sum(u["verdict"] == "fail" for u in units)
    conforming = sum(u["conforming"] for u in units)
    return {
        "units": n, "passed": n - failed, "failed": failed,
        "defect_rate": round(failed / n, 6),
        "reviewed": sum(u["review"] is not None for u in units),
        "overridden": sum(u["review"] == "disagree" for u in units),
        "conforming": conforming, "nonconforming": n - conforming,
        "all_conform": conforming == n,
        "with_serial": sum(bool(u["serial"]) for u in units),
        "nonconforming_by_label": dict(sorted(Counter(
            u["final_label"] for u in units if not u["conforming"]).items())),
        "products": sorted({u["product"] for u in units}),
        "stations": sorted({u["station"] for u in units if u["station"]}),
        "model_versions": sorted({u["model_version"] for u in units if u["model_version"]}),
        "first_inspected_at": units[0]["inspected_at"], "last_inspected_at":
            units[-1]["inspected_at"],
    }
