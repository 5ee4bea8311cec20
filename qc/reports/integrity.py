"""Coverage and integrity of a period's records: traceability (lot, serial), photos retained,
results that reached the service late (a station offline), and changes of model.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, ModelActivation, ModelVersion, Product, Station
from qc.service.stats import StatsRequest

log = logging.getLogger(__name__)

LATE_SECONDS = 3600  # a result recorded more than an hour after the inspection came in late


def _delay_seconds(db: Session) -> Any:
    """received_at − inspected_at in seconds, in the database's own dialect."""
    i = Inspection
    if db.get_bind().dialect.name == "sqlite":
        return (func.julianday(i.received_at) - func.julianday(i.inspected_at)) * 86400.0
    return func.extract("epoch", i.received_at - i.inspected_at)


def coverage(db: Session, req: StatsRequest) -> dict:
    """Per station and in total: units, with lot, with serial, with photo, sent by an edge
    station, late, and the longest delay (one GROUP BY over the period's inspections)."""
    i = Inspection
    delay = _delay_seconds(db)
    query = (
        select(i.station_id, func.count(), func.count(i.lot), func.count(i.serial),
               func.count(i.image_path), func.sum(case((i.source == "edge", 1), else_=0)),
               func.sum(case((delay > LATE_SECONDS, 1), else_=0)), func.max(delay))
        .where(i.inspected_at >= req.start, i.inspected_at < req.end)
        .group_by(i.station_id)
    )
    if req.product is not None:
        query = query.where(i.product_id == req.product.id)
    names = dict(db.execute(select(Station.id, Station.name)).all())
    rows = []
    for station_id, n, lot, serial, photo, edge, late, longest in db.execute(query):
        rows.append({"station": names.get(station_id), "inspected": int(n),
                     "with_lot": int(lot), "with_serial": int(serial), "with_photo": int(photo),
                     "from_edge": int(edge or 0), "late": int(late or 0),
                     "longest_delay_s": round(max(float(longest or 0), 0.0), 1)})
    rows.sort(key=lambda r: r["station"] or "")
    total = {k: sum(r[k] for r in rows) for k in ("inspected", "with_lot", "with_serial",
                                                  "with_photo", "from_edge", "late")}
    n = total["inspected"]
    shares = {f"share_{k}": round(total[k] / n, 6) if n else None
              for k in ("with_lot", "with_serial", "with_photo", "late")}
    total["longest_delay_s"] = max((r["longest_delay_s"] for r in rows), default=0.0)
    return {"total": {**total, **shares}, "stations": rows, "late_after_s": LATE_SECONDS}


def model_changes(db: Session, req: StatsRequest) -> dict:
    """Model activations and rollbacks in the period (who, when) and what was active before."""
    a, v = ModelActivation, ModelVersion
    base = (select(Product.name, v.version, v.sha256, a.action, a.username, a.at)
            .join(v, a.model_version_id == v.id).join(Product, a.product_id == Product.id))
    if req.product is not None:
        base = base.where(a.product_id == req.product.id)
    changes = db.execute(base.where(a.at >= req.start, a.at < req.end).order_by(a.at, a.id))
    before: dict[str, dict] = {}
    for row in db.execute(base.where(a.at < req.start).order_by(a.at, a.id)):
        before[row[0]] = _change(row)
    return {"active_at_start": [before[k] for k in sorted(before)],
            "during": [_change(row) for row in changes]}


def _change(row: Any) -> dict:
    product, version, sha256, action, username, at = row
    return {"product": product, "model_version": version, "sha256": sha256, "action": action,
            "by": username, "at": at.isoformat()}


