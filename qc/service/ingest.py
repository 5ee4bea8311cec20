"""Recording inspections: each one once (the client's UUID is the key), with the hourly counts
that statistics read updated in the same transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Table,
    Text,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qc.db.models import (
    NO_STATION,
    Inspection,
    InspectionCount,
    ModelVersion,
    Product,
    Station,
    utcnow,
)
from qc.inference import decide
from qc.service import schemas
from qc.service.auth import STATION, Principal

log = logging.getLogger(__name__)

MAX_FUTURE = timedelta(days=1)  # a station clock that far ahead is wrong, not early
# Times outside these years are a broken clock or a probe, and near year 1 or 9999 the
# conversions to UTC and to the plant's time zone overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
COLUMNS = (
    "id",
    "product_id",
    "station_id",
    "model_version_id",
    "model_version",
    "lot",
    "serial",
    "operator",
    "inspected_at",
    "received_at",
    "source",
    "score",
    "raw_score",
    "verdict",
    "defect_type",
    "latency_ms",
    "image_path",
    "heatmap_path",
    "flags",
    "source_name",
)


class ResultError(ValueError):
    """One result that cannot be recorded; the message names the field."""


def parse_uuid(value: object) -> str:
    """Canonical 36-character lowercase UUID text."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ResultError(f"id must be a UUID, not {value!r}") from None


def parse_time(
    value: object, what: str = "timestamp", naive_tz: timezone = timezone.utc
) -> datetime:
    """An ISO 8601 time (years 1970..8999) as aware UTC; naive times are taken in naive_tz."""
    try:
        ts = datetime.fromisoformat(str(value).strip())
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=naive_tz)
        ts = ts.astimezone(timezone.utc)
    except ValueError:
        raise ResultError(
            f"{what} must be ISO 8601 like 2026-01-31T14:05:00Z, not {value!r}"
        ) from None
    except OverflowError:
        ts = EARLIEST - MAX_FUTURE  # out of range either way
    if not EARLIEST <= ts < LATEST:
        raise ResultError(f"{what} must lie between 1970 and 9000, not {value!r}")
    return ts


def _flags(values: list[str] | None) -> list[str] | None:
    """The station's image-quality flags, trimmed and without repeats (none: None)."""
    flags = list(dict.fromkeys(f.strip() for f in values or () if f.strip()))
    return flags or None


def inspection_row(**values: object) -> dict:
    """An inspections row for record(): every column of COLUMNS, None where not given."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not inspection columns: {sorted(unknown)}")
    return {**dict.fromkeys(COLUMNS), **values}


@dataclass
class Resolver:
    """Looks up products, stations and model versions once per batch."""

    db: Session
    principal: Principal
    products: dict[str, Product] = field(default_factory=dict)
    stations: dict[str, Station] = field(default_factory=dict)
    versions: dict[tuple[int, str], int | None] = field(default_factory=dict)

    def product(self, name: object) -> Product:
        key = str(name or "").strip()
        if not key:
            raise ResultError("product is required")
        if key not in self.products:
            found = self.db.scalar(select(Product).where(Product.name == key))
            if found is None:
                raise ResultError(f"unknown product {key!r}; an admin creates it first")
            self.products[key] = found
        return self.products[key]

    def station_id(self, name: object) -> int | None:
        key = str(name or "").strip()
        if self.principal.role == STATION:
            own = self.principal.username.removeprefix("station:")
            if key and key != own:
                raise ResultError(f"this key belongs to station {own!r}, not {key!r}")
            return self.principal.station_id
        if not key:
            return None
        if key not in self.stations:
            found = self.db.scalar(select(Station).where(Station.name == key))
            if found is None:
                raise ResultError(f"unknown station {key!r}")
            self.stations[key] = found
        return self.stations[key].id

    def version_id(self, product_id: int, label: str | None) -> int | None:
        if not label:
            return None
        key = (product_id, label)
        if key not in self.versions:
            self.versions[key] = self.db.scalar(
                select(ModelVersion.id)
                .where(
                    ModelVersion.product_id == product_id,
                    (ModelVersion.version == label) | (ModelVersion.sha256 == label),
                )
                .order_by(ModelVersion.id.desc())
                .limit(1)
            )
        return self.versions[key]


def parse_result(item: object, resolve: Resolver, now: datetime) -> dict:
    """One edge result (JSON object) as an inspections row; raises ResultError."""
    if not isinstance(item, dict):
        raise ResultError("each result must be a JSON object")
    try:
        result = schemas.check(schemas.ResultIn, item)
    except schemas.BodyError as exc:
        raise ResultError(str(exc)) from None
    product = resolve.product(result.product)
    inspected_at = parse_time(result.timestamp)
    if inspected_at > now + MAX_FUTURE:
        raise ResultError("timestamp is more than a day in the future; check the station clock")
    verdict = result.verdict or decide(result.score)
    label = result.model_version or None
    return inspection_row(
        id=parse_uuid(result.id),
        product_id=product.id,
        station_id=resolve.station_id(result.station),
        model_version_id=resolve.version_id(product.id, label),
        model_version=label,
        lot=result.lot or None,
        serial=result.serial or None,
        operator=result.operator or None,
        inspected_at=inspected_at,
        received_at=now,
        source="edge",
        score=result.score,
        raw_score=result.raw_score,
        verdict=verdict,
        defect_type=(result.defect_type or None) if verdict == "fail" else None,
        latency_ms=result.latency_ms,
        flags=_flags(result.flags),
        source_name=result.source_name or None,
    )


def _dialect_insert(db: Session, table: Table):
    name = db.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {name!r}: use SQLite or PostgreSQL")


def record(db: Session, rows: list[dict]) -> set[str]:
    """Insert inspection rows whose id is new; update hourly counts; return the inserted ids.

    Safe against concurrent duplicates: the insert skips ids that exist (ON CONFLICT DO NOTHING),
    and rows go in sorted by id, so overlapping batches lock ids in one order and never deadlock.
    """
    by_id = {row["id"]: row for row in reversed(rows)}  # first wins
    unique = [by_id[key] for key in sorted(by_id)]
    if not unique:
        return set()
    table = Inspection.__table__
    if db.get_bind().dialect.name == "postgresql":
        inserted = set(db.execute(_unnest_insert(table, unique)).scalars())
    else:
        stmt = _dialect_insert(db, table).on_conflict_do_nothing(index_elements=["id"])
        inserted = set(db.execute(stmt.returning(table.c.id), unique).scalars())
    if inserted:
        bump_counts(db, [row for row in unique if row["id"] in inserted])
    return inserted


def _unnest_insert(table: Table, rows: list[dict]):
    """INSERT ... SELECT unnest(array per column) ON CONFLICT DO NOTHING RETURNING id.

    One short statement with one array per column, whatever the batch size: psycopg caches and
    prepares it, while a multi-row VALUES of 20 parameters per row is re-parsed on every call.
    """
    columns = [table.c[name] for name in rows[0]]  # as executemany: the first row's keys
    source = select(*(_unnest(c, [row[c.name] for row in rows]) for c in columns))
    # Set-returning functions in one SELECT list run in lockstep (PostgreSQL 10+), in array order.
    stmt = postgresql.insert(table).from_select(columns, source)
    return stmt.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)


def _unnest(column: Column, values: list) -> ColumnElement:
    """unnest() of one column's values, sent as one array parameter."""
    if isinstance(column.type, JSON):  # a list would be read as a nested array: send JSON text
        texts = [None if v is None else json.dumps(v) for v in values]
        array = bindparam(column.name, texts, type_=postgresql.ARRAY(Text))
        return cast(func.unnest(array), column.type)
    return func.unnest(bindparam(column.name, values, type_=postgresql.ARRAY(column.type)))


def count_key(row: dict) -> tuple:
    """(product_id, hour, station_id, verdict, defect_type) of an inspections row."""
    hour = row["inspected_at"].astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return (
        row["product_id"],
        hour,
        row["station_id"] or NO_STATION,
        row["verdict"],
        row["defect_type"] or "",
    )


def bump_counts(db: Session, rows: list[dict]) -> None:
    """Add rows to the hourly pre-aggregate (upsert, keys sorted so writers never deadlock)."""
    counts = Counter(count_key(row) for row in rows)
    table = InspectionCount.__table__
    names = ("product_id", "hour", "station_id", "verdict", "defect_type")
    params = [dict(zip(names, key), count=n) for key, n in sorted(counts.items())]
    stmt = _dialect_insert(db, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(names), set_={"count": table.c.count + stmt.excluded["count"]}
    )
    db.execute(stmt, params)


def server_row(
    inspection_id: str,
    product: Product,
    station_id: int | None,
    fields: dict,
    verdict: dict,
    now: datetime,
) -> dict:
    """An inspections row for an image inspected by the service itself."""
    return inspection_row(
        id=inspection_id,
        product_id=product.id,
        station_id=station_id,
        model_version_id=product.active_model.id,
        model_version=product.active_model.version,
        lot=fields.get("lot"),
        serial=fields.get("serial"),
        operator=fields.get("operator"),
        inspected_at=now,
        received_at=now,
        source="server",
        score=verdict["score"],
        raw_score=verdict["raw_score"],
        verdict=verdict["verdict"],
        defect_type=verdict["defect_type"],
        latency_ms=verdict["latency_ms"],
        image_path=fields.get("image_path"),
        heatmap_path=fields.get("heatmap_path"),
    )


def touch_station(db: Session, principal: Principal, now: datetime | None = None) -> None:
    """Remember when a station last sent something (one UPDATE, no SELECT first)."""
    if principal.role == STATION and principal.station_id is not None:
        db.execute(
            update(Station)
            .where(Station.id == principal.station_id)
            .values(last_seen_at=now or utcnow())
        )


def rebuild_counts(db: Session, chunk: int = 50_000) -> int:
    """Recompute inspection_counts from inspections; returns the number of inspections read."""
    db.execute(InspectionCount.__table__.delete())
    i = Inspection
    query = select(i.product_id, i.inspected_at, i.station_id, i.verdict, i.defect_type)
    names = ("product_id", "inspected_at", "station_id", "verdict", "defect_type")
    total, batch = 0, []
    for row in db.execute(query.execution_options(yield_per=chunk)):
        batch.append(dict(zip(names, row)))
        if len(batch) >= chunk:
            bump_counts(db, batch)
            total, batch = total + len(batch), []
    if batch:
        bump_counts(db, batch)
    return total + len(batch)
