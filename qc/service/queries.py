"""Reading inspections: filters from query arguments, paging, JSON and CSV views, engineers'
reviews and operators' flags."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, request, url_for
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager

from qc.db.models import VERDICTS, Inspection, Product, Station, utcnow
from qc.service.auth import STATION, Principal
from qc.service.errors import ServiceError
from qc.service.ingest import ResultError, parse_time
from qc.service.schemas import ReviewIn

log = logging.getLogger(__name__)

MAX_PAGE = 500
CSV_COLUMNS = (
    "id",
    "product",
    "station",
    "lot",
    "serial",
    "source_name",
    "operator",
    "inspected_at",
    "score",
    "verdict",
    "defect_type",
    "model_version",
    "latency_ms",
    "review",
    "review_label",
    "review_note",
    "reviewed_by",
    "reviewed_at",
    "flagged_by",
    "flagged_at",
    "flag_note",
    "flags",
)


@dataclass
class Filters:
    """Which inspections a list, export or dataset asks for."""

    product: str | None = None
    station: str | None = None
    lot: str | None = None
    serial: str | None = None
    operator: str | None = None
    verdict: str | None = None
    defect_type: str | None = None
    reviewed: bool | None = None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_args(cls, args: Any, naive_tz: Any = timezone.utc) -> Filters:
        """Parse query arguments; 400 on values that cannot be right."""
        values = {
            k: (args.get(k) or None)
            for k in ("product", "station", "lot", "serial", "operator", "verdict", "defect_type")
        }
        if values["verdict"] and values["verdict"] not in VERDICTS:
            raise ServiceError("verdict must be 'pass' or 'fail'", 400)
        reviewed = args.get("reviewed")
        if reviewed not in (None, "", "true", "false", "1", "0"):
            raise ServiceError("reviewed must be true or false", 400)
        try:
            start = parse_time(args["from"], "from", naive_tz) if args.get("from") else None
            end = parse_time(args["to"], "to", naive_tz) if args.get("to") else None
        except ResultError as exc:
            raise ServiceError(str(exc), 400) from None
        flag = None if reviewed in (None, "") else reviewed in ("true", "1")
        return cls(**values, reviewed=flag, start=start, end=end)


def request_filters() -> Filters:
    """Filters of the current request; naive from/to are plant time (QC_TIMEZONE)."""
    return Filters.from_args(request.args, ZoneInfo(current_app.config["TIMEZONE"]))


def scoped(query: Select, filters: Filters, principal: Principal) -> Select:
    """Apply filters, and limit operators to their own results and stations to theirs."""
    if principal.role == "operator":
        query = query.where(Inspection.operator == principal.username)
    elif principal.role == STATION:
        query = query.where(Inspection.station_id == principal.station_id)
    if filters.product:
        query = query.where(Product.name == filters.product)
    if filters.station:
        query = query.where(Station.name == filters.station)
    for name in ("lot", "serial", "operator", "verdict", "defect_type"):
        value = getattr(filters, name)
        if value:
            query = query.where(getattr(Inspection, name) == value)
    if filters.reviewed is not None:
        column = Inspection.review
        query = query.where(column.is_not(None) if filters.reviewed else column.is_(None))
    if filters.start:
        query = query.where(Inspection.inspected_at >= filters.start)
    if filters.end:
        query = query.where(Inspection.inspected_at < filters.end)
    return query


def _base() -> Select:
    return (
        select(Inspection)
        .join(Product, Inspection.product_id == Product.id)
        .outerjoin(Station, Inspection.station_id == Station.id)
        .options(contains_eager(Inspection.product), contains_eager(Inspection.station))
    )


def list_page(
    db: Session, filters: Filters, principal: Principal, limit: int, offset: int
) -> tuple[list[Inspection], bool]:
    """Newest first; returns (items, whether more follow)."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ServiceError(f"limit must be 1..{MAX_PAGE} and offset >= 0", 400)
    query = scoped(_base(), filters, principal)
    query = query.order_by(Inspection.inspected_at.desc(), Inspection.id.desc())
    rows = db.scalars(query.limit(limit + 1).offset(offset)).all()
    return list(rows[:limit]), len(rows) > limit


def get_visible(db: Session, inspection_id: str, principal: Principal) -> Inspection:
    """One inspection the caller may see, else 404."""
    query = scoped(_base().where(Inspection.id == inspection_id), Filters(), principal)
    found = db.scalars(query).first()
    if found is None:
        raise ServiceError(f"no inspection {inspection_id}", 404)
    return found


def file_url(inspection_id: str, kind: str) -> str:
    """URL of an inspection's stored photo ("image") or heatmap."""
    return url_for("api.inspection_file", inspection_id=inspection_id, kind=kind)


def to_dict(insp: Inspection, url_for_file: Any = None) -> dict:
    """JSON view of an inspection; url_for_file(id, kind) makes image/heatmap links."""

    def link(kind: str, present: str | None) -> str | None:
        return url_for_file(insp.id, kind) if present and url_for_file else None

    return {
        "id": insp.id,
        "product": insp.product.name,
        "station": insp.station.name if insp.station else None,
        "lot": insp.lot,
        "serial": insp.serial,
        "operator": insp.operator,
        "inspected_at": insp.inspected_at.isoformat(),
        "score": insp.score,
        "raw_score": insp.raw_score,
        "verdict": insp.verdict,
        "defect_type": insp.defect_type,
        "model_version": insp.model_version,
        "latency_ms": insp.latency_ms,
        "source": insp.source,
        "image_url": link("image", insp.image_path),
        "heatmap_url": link("heatmap", insp.heatmap_path),
        "review": _review_dict(insp),
        "operator_flag": flag_dict(insp),
        "flags": insp.flags or [],
        "source_name": insp.source_name,
    }


def _review_dict(insp: Inspection) -> dict | None:
    if insp.review is None:
        return None
    return {
        "review": insp.review,
        "label": insp.review_label,
        "note": insp.review_note,
        "by": insp.reviewed_by,
        "at": insp.reviewed_at.isoformat() if insp.reviewed_at else None,
    }


def flag_dict(insp: Inspection) -> dict | None:
    """An operator's flag as JSON (None when not flagged)."""
    if insp.flagged_by is None:
        return None
    at = insp.flagged_at.isoformat() if insp.flagged_at else None
    return {"by": insp.flagged_by, "at": at, "note": insp.flag_note}


def model_label(verdict: str, defect_type: str | None) -> str:
    """The label the model gave: "good" for a pass, else the defect type ("defect" if none)."""
    return "good" if verdict == "pass" else (defect_type or "defect")


def set_review(insp: Inspection, body: ReviewIn, username: str) -> None:
    """Record an engineer's agree/disagree (+ corrected label and note); a later one replaces it."""
    label = body.label or None
    if body.review == "disagree" and label is None:
        label = "good" if insp.verdict == "fail" else "defect"
    if body.review == "agree":
        label = model_label(insp.verdict, insp.defect_type)
    insp.review, insp.review_label = body.review, label
    insp.review_note = body.note or None
    insp.reviewed_by, insp.reviewed_at = username, utcnow()


def set_flag(insp: Inspection, note: str, username: str) -> None:
    """Record an operator's doubt about a verdict for an engineer to check; it is no label."""
    if insp.flagged_by is not None and insp.flagged_by != username:
        raise ServiceError(f"already flagged by {insp.flagged_by}", 409)
    insp.flagged_by, insp.flagged_at, insp.flag_note = username, utcnow(), note


def iter_csv(
    db: Session, filters: Filters, principal: Principal, chunk: int = 2000
) -> Iterator[str]:
    """CSV text of the matching inspections, oldest first, streamed in chunks."""
    query = scoped(
        select(*[_csv_column(name) for name in CSV_COLUMNS])
        .select_from(Inspection)
        .join(Product, Inspection.product_id == Product.id)
        .outerjoin(Station, Inspection.station_id == Station.id),
        filters,
        principal,
    ).order_by(Inspection.inspected_at, Inspection.id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for i, row in enumerate(db.execute(query.execution_options(yield_per=chunk)), 1):
        writer.writerow([_csv_value(v) for v in row])
        if i % chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_column(name: str) -> Any:
    if name == "product":
        return Product.name.label("product")
    if name == "station":
        return Station.name.label("station")
    return getattr(Inspection, name)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        value = ";".join(value)
    return "" if value is None else csv_cell(value)


# A cell, or any piece of it after a separator some spreadsheet splits on, that starts with one
# of these is run as a formula (OWASP "CSV injection").
_FORMULA_START = re.compile(r"(^|[,;\t|\r\n])(\s*)([=+\-@\t\r])")


def csv_cell(value: Any) -> Any:
    """A CSV cell spreadsheets show as text: "'" before every formula-starting piece."""
    if not isinstance(value, str):
        return value
    return _FORMULA_START.sub(r"\1\2'\3", value)
