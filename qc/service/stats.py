"""Statistics for managers: totals, p-chart, Pareto and savings over a period.

Whole hours are read from the hourly pre-aggregate (inspection_counts, GROUP BY on its primary
key); the partial hours at either end of the period from inspections (indexed by time), so the
answer is exact for any from/to and fast over millions of inspections.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from qc import economics, spc
from qc.db.models import Inspection, InspectionCount, ModelVersion, Product, Station, utcnow
from qc.service.errors import ServiceError
from qc.service.ingest import ResultError, parse_time

log = logging.getLogger(__name__)

DEFAULT_SPAN = {
    "hour": timedelta(hours=48),
    "shift": timedelta(days=14),
    "day": timedelta(days=30),
    "week": timedelta(weeks=26),
}
BUCKET_HOURS = {"hour": 1, "shift": 8, "day": 24, "week": 168}
MAX_BUCKETS = 5000  # a chart wider than this is unreadable; ask for a coarser bucket


@dataclass
class StatsRequest:
    """A validated stats question."""

    start: datetime
    end: datetime
    bucket: str
    tz: ZoneInfo
    shifts: tuple[int, ...]
    product: Product | None = None
    station: Station | None = None


def parse_request(db: Session, args: Any, config: Any) -> StatsRequest:
    """From query arguments; naive from/to are plant-local time (QC_TIMEZONE)."""
    tz, bucket = ZoneInfo(config["TIMEZONE"]), args.get("bucket") or "day"
    if bucket not in spc.BUCKETS:
        raise ServiceError(f"bucket must be one of {', '.join(spc.BUCKETS)}", 400)
    try:
        end = parse_time(args["to"], "to", tz) if args.get("to") else utcnow()
        start = (
            parse_time(args["from"], "from", tz)
            if args.get("from")
            else (end - DEFAULT_SPAN[bucket])
        )
    except ResultError as exc:
        raise ServiceError(str(exc), 400) from None
    if start >= end:
        raise ServiceError("'from' must be before 'to'", 400)
    if (end - start) / timedelta(hours=BUCKET_HOURS[bucket]) > MAX_BUCKETS:
        raise ServiceError(f"more than {MAX_BUCKETS} {bucket} buckets; use a coarser bucket", 400)
    req = StatsRequest(start, end, bucket, tz, spc.parse_shift_starts(config["SHIFTS"]))
    for name, model in (("product", Product), ("station", Station)):
        if args.get(name):
            row = db.scalar(select(model).where(model.name == args[name]))
            if row is None:
                raise ServiceError(f"no {name} named {args[name]!r}", 404)
            setattr(req, name, row)
    return req


def _whole_hours(req: StatsRequest) -> tuple[datetime, datetime]:
    """[first, last): the whole UTC hours inside [start, end) (first >= last when none)."""
    first = req.start.replace(minute=0, second=0, microsecond=0)
    first += timedelta(hours=1) if req.start != first else timedelta(0)
    return first, req.end.replace(minute=0, second=0, microsecond=0)


def _scoped(query: Select, columns: Any, req: StatsRequest) -> Select:
    """Limit a query to the request's product and station (columns: a table or model)."""
    if req.product is not None:
        query = query.where(columns.product_id == req.product.id)
    if req.station is not None:
        query = query.where(columns.station_id == req.station.id)
    return query


@dataclass
class Tally:
    """Counts of a period: by time (hour or instant), by product and by defect type."""

    by_time: dict[datetime, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_product: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def tally(db: Session, req: StatsRequest) -> Tally:
    """Count [start, end) exactly: whole hours from the pre-aggregate, the rest from inspections."""
    out = Tally()
    first, last = _whole_hours(req)
    if first >= last:
        _tally_raw(db, req, req.start, req.end, out)
        return out
    _tally_raw(db, req, req.start, first, out)
    _tally_hours(db, req, first, last, out)
    _tally_raw(db, req, last, req.end, out)
    return out


def _tally_hours(
    db: Session, req: StatsRequest, first: datetime, last: datetime, out: Tally
) -> None:
    """Three GROUP BYs on the (covering-indexed) hourly counts; few rows come back."""
    c = InspectionCount
    failed = func.sum(case((c.verdict == "fail", c.count), else_=0))

    def scoped(query: Select) -> Select:
        return _scoped(query.where(c.hour >= first, c.hour < last), c, req)

    for hour, n, d in db.execute(
        scoped(select(c.hour, func.sum(c.count), failed).group_by(c.hour))
    ):
        out.by_time[hour] = [int(n), int(d)]
    for product_id, n, d in db.execute(
        scoped(select(c.product_id, func.sum(c.count), failed).group_by(c.product_id))
    ):
        acc = out.by_product[product_id]
        acc[0], acc[1] = acc[0] + int(n), acc[1] + int(d)
    query = select(c.defect_type, func.sum(c.count)).where(c.verdict == "fail")
    for dtype, n in db.execute(scoped(query.group_by(c.defect_type))):
        out.by_type[dtype] += int(n)


def _tally_raw(db: Session, req: StatsRequest, start: datetime, end: datetime, out: Tally) -> None:
    """Count inspections of a partial hour one by one (at most an hour's worth of rows)."""
    if start >= end:
        return
    for ts, product_id, verdict, dtype in db.execute(_raw_query(req, start, end)):
        failed = int(verdict == "fail")
        for acc in (out.by_time[ts], out.by_product[product_id]):
            acc[0] += 1
            acc[1] += failed
        if failed:
            out.by_type[dtype or ""] += 1


def count_rows(db: Session, req: StatsRequest) -> list[tuple[datetime, int, str, str, int]]:
    """(time, product_id, verdict, defect_type, count) rows covering [start, end) exactly, for
    series by product (more rows than tally(): GROUP BY hour, product, verdict and type)."""
    first, last = _whole_hours(req)
    if first >= last:
        return _raw_rows(db, req, req.start, req.end)
    c = InspectionCount
    query = (
        select(c.hour, c.product_id, c.verdict, c.defect_type, func.sum(c.count))
        .where(c.hour >= first, c.hour < last)
        .group_by(c.hour, c.product_id, c.verdict, c.defect_type)
    )
    rows = [(h, pid, v, t, int(n)) for h, pid, v, t, n in db.execute(_scoped(query, c, req))]
    return _raw_rows(db, req, req.start, first) + rows + _raw_rows(db, req, last, req.end)


def _raw_rows(db: Session, req: StatsRequest, start: datetime, end: datetime) -> list[tuple]:
    if start >= end:
        return []
    rows = db.execute(_raw_query(req, start, end))
    return [(ts, pid, verdict, dtype or "", 1) for ts, pid, verdict, dtype in rows]


def _raw_query(req: StatsRequest, start: datetime, end: datetime) -> Select:
    i = Inspection
    query = select(i.inspected_at, i.product_id, i.verdict, i.defect_type).where(
        i.inspected_at >= start, i.inspected_at < end
    )
    return _scoped(query, i, req)


def compute(db: Session, req: StatsRequest, prior_weight: float) -> dict:
    """Totals, p-chart series, Pareto and savings of a StatsRequest."""
    counts = tally(db, req)
    buckets: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])  # bucket -> [n, d]
    for ts, (n_ts, d_ts) in counts.by_time.items():
        acc = buckets[spc.bucket_start(ts, req.bucket, req.tz, req.shifts)]
        acc[0] += n_ts
        acc[1] += d_ts
    per_product, defects = counts.by_product, counts.by_type
    n = sum(v[0] for v in per_product.values())
    d = sum(v[1] for v in per_product.values())
    center, points = spc.p_chart([(b, v[0], v[1]) for b, v in sorted(buckets.items())])
    return {
        "filters": _filters(req),
        "totals": {
            "inspected": n,
            "defective": d,
            "passed": n - d,
            "defect_rate": d / n if n else None,
            "first_pass_yield": spc.first_pass_yield(n - d, n),
        },
        "p_chart": {"center": center, "points": [p.to_dict() for p in points]},
        "pareto": spc.pareto(defects),
        "savings": savings_section(db, per_product, req, prior_weight),
    }


def _filters(req: StatsRequest) -> dict:
    return {
        "product": req.product.name if req.product else None,
        "station": req.station.name if req.station else None,
        "from": req.start.isoformat(),
        "to": req.end.isoformat(),
        "bucket": req.bucket,
        "timezone": str(req.tz),
        "shift_starts": list(req.shifts),
    }


def review_counts(db: Session, model_version_id: int) -> economics.ReviewCounts:
    """Engineers' reviews of one model version's verdicts (operators' flags are no reviews)."""
    i = Inspection
    query = select(i.verdict, i.review, func.count()).where(
        i.review.is_not(None), i.model_version_id == model_version_id
    )
    rows = db.execute(query.group_by(i.verdict, i.review))
    counts = {f"{verdict}_{review}": int(n) for verdict, review, n in rows}
    return economics.ReviewCounts(**counts)


def savings_section(
    db: Session, per_product: dict[int, list[int]], req: StatsRequest, prior_weight: float
) -> dict:
    """Savings per product with their assumptions, and the total."""
    ids = set(per_product) | ({req.product.id} if req.product else set())
    products = db.scalars(select(Product).where(Product.id.in_(ids))).all() if ids else []
    entries, total, units = [], 0.0, 0
    for product in sorted(products, key=lambda p: p.name):
        n, d = per_product.get(product.id, [0, 0])
        entry = product_savings(db, product, n, d, prior_weight)
        if entry.get("total") is not None:
            total += entry["total"]
            units += n
        entries.append(entry)
    return {
        "total": round(total, 2),
        "units": units,
        "per_unit": round(total / units, 6) if units else None,
        "products": entries,
        "method": "docs/economics.md",
    }


def product_savings(db: Session, product: Product, n: int, d: int, prior_weight: float) -> dict:
    """One product's savings entry, or the reason it cannot be computed."""
    head = {"product": product.name, "units": n}
    version: ModelVersion | None = product.active_model
    if version is None:
        return {**head, "total": None, "reason": "no active model (recall unknown)"}
    metrics = version.info.get("metrics") or {}
    if "recall" not in metrics or "false_reject_rate" not in metrics:
        return {
            **head,
            "total": None,
            "model_version": version.version,
            "reason": "the model's metadata lacks validation recall / false_reject_rate",
        }
    q = d / n if n else 0.0
    rates = economics.refine_rates(
        q,
        float(metrics["recall"]),
        float(metrics["false_reject_rate"]),
        review_counts(db, version.id),
        prior_weight,
    )
    result = economics.savings(n, d, rates, economics.CostParams.from_object(product))
    out = {**head, "model_version": version.version, **result.to_dict()}
    out["assumptions"]["review_prior_weight"] = prior_weight
    return out
