"""Chart series the stats API does not give directly: defect rate per station and savings over
time. Both use the buckets of the p-chart and the functions behind GET /api/v1/stats, so the
last cumulative savings value is the period's savings total.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc import spc
from qc.db.models import Product, Station
from qc.service.stats import StatsRequest, count_rows, product_savings


def bucketed(db: Session, req: StatsRequest) -> dict[str, dict[int, list[int]]]:
    """{bucket ISO: {product_id: [n, defective]}} of a stats request."""
    out: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    starts: dict[datetime, str] = {}
    for ts, product_id, verdict, _dtype, count in count_rows(db, req):
        if ts not in starts:
            starts[ts] = spc.bucket_start(ts, req.bucket, req.tz, req.shifts).isoformat()
        acc = out[starts[ts]][product_id]
        acc[0] += count
        acc[1] += count if verdict == "fail" else 0
    return out


def station_trend(db: Session, req: StatsRequest, labels: list[str]) -> list[dict]:
    """Defect rate per bucket of each station with results in the period (None: no items)."""
    if req.station is not None:
        return []
    out = []
    for station in db.scalars(select(Station).order_by(Station.name)):
        groups = bucketed(db, dataclasses.replace(req, station=station))
        if not groups:
            continue
        rates = []
        for label in labels:
            n = sum(v[0] for v in groups.get(label, {}).values())
            d = sum(v[1] for v in groups.get(label, {}).values())
            rates.append(round(d / n, 6) if n else None)
        out.append({"station": station.name, "line": station.line, "rates": rates})
    return out


def savings_over_time(
    db: Session, req: StatsRequest, labels: list[str], prior_weight: float
) -> dict:
    """Cumulative savings at the end of each bucket (as GET /api/v1/stats computes them for the
    period from the start to that bucket's end) and the part each bucket added."""
    groups = bucketed(db, req)
    ids = {pid for group in groups.values() for pid in group}
    products = {p.id: p for p in db.scalars(select(Product).where(Product.id.in_(ids)))}
    running: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    cumulative, per_bucket, previous = [], [], 0.0
    for label in labels:
        for pid, (n, d) in groups.get(label, {}).items():
            running[pid][0] += n
            running[pid][1] += d
        total = 0.0
        for pid, (n, d) in running.items():
            entry = product_savings(db, products[pid], n, d, prior_weight)
            total += entry.get("total") or 0.0
        cumulative.append(round(total, 2))
        per_bucket.append(round(total - previous, 2))
        previous = total
    return {"cumulative": cumulative, "per_bucket": per_bucket}
