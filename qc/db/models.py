"""Typed SQLAlchemy 2 models of the plant database.

Conventions that keep SQLite and PostgreSQL behaving the same: inspection ids are 36-character
UUID strings; every timestamp is UTC and comes back timezone-aware (UTCDateTime).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from qc.economics import DEFAULT_COSTS

log = logging.getLogger(__name__)

ROLES = ("operator", "manager", "engineer", "admin")
VERDICTS = ("pass", "fail")
REVIEWS = ("agree", "disagree")
NO_STATION = 0  # station_id of counts for inspections without a station (keys cannot be NULL)


def utcnow() -> datetime:
    """The current time, UTC, aware."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of all qc tables."""


class User(Base):
    """A person who logs in (or a script using the person's API key)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    api_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped at log-out and on a password change: sessions signed with an older one end.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


station_products = Table(
    "station_products",
    Base.metadata,
    Column("station_id", ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
)


class Station(Base):
    """An inspection station on a line; it authenticates with its API key."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    line: Mapped[str | None] = mapped_column(String(64))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The products this station inspects: its key downloads only their models.
    products: Mapped[list[Product]] = relationship(
        secondary=station_products, order_by="Product.name"
    )


def _cost(name: str) -> Mapped[float]:
    return mapped_column(Float, default=DEFAULT_COSTS[name])


class Product(Base):
    """A product inspected in the plant, with its cost parameters and its active model."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    sku: Mapped[str | None] = mapped_column(String(64))
    manual_inspection_cost: Mapped[float] = _cost("manual_inspection_cost")
    manual_miss_rate: Mapped[float] = _cost("manual_miss_rate")
    escape_cost: Mapped[float] = _cost("escape_cost")
    internal_failure_cost: Mapped[float] = _cost("internal_failure_cost")
    false_reject_cost: Mapped[float] = _cost("false_reject_cost")
    qc_cost_per_unit: Mapped[float] = _cost("qc_cost_per_unit")
    active_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", use_alter=True, name="fk_products_active_model")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    active_model: Mapped[ModelVersion | None] = relationship(
        foreign_keys=[active_model_id], post_update=True
    )


class ModelVersion(Base):
    """An uploaded qc ONNX package (stored as DATA_DIR/models/<sha256>.onnx)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("product_id", "sha256", name="uq_model_versions_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))  # relative to DATA_DIR
    info: Mapped[dict] = mapped_column(JSON)  # ModelInfo as a dict
    uploaded_by: Mapped[str | None] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(foreign_keys=[product_id])


class ModelActivation(Base):
    """Who activated (or rolled back to) which model version of a product, and when."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))  # "activate" | "rollback"
    username: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Inspection(Base):
    """One inspected unit; the id is the client's UUID, so re-sending it records it once."""

    __tablename__ = "inspections"
    __table_args__ = (
        Index("ix_inspections_product_time", "product_id", "inspected_at"),
        Index("ix_inspections_station_time", "station_id", "inspected_at"),
        Index("ix_inspections_time", "inspected_at"),
        Index("ix_inspections_serial", "serial"),
        Index("ix_inspections_review", "review", "model_version_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    model_version: Mapped[str | None] = mapped_column(String(64))  # as reported
    lot: Mapped[str | None] = mapped_column(String(64))
    serial: Mapped[str | None] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(64))
    inspected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(8), default="server")  # "server" | "edge"
    score: Mapped[float] = mapped_column(Float)
    raw_score: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(8))
    defect_type: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    image_path: Mapped[str | None] = mapped_column(String(255))
    heatmap_path: Mapped[str | None] = mapped_column(String(255))
    review: Mapped[str | None] = mapped_column(String(8))  # an engineer's "agree" | "disagree"
    review_label: Mapped[str | None] = mapped_column(String(64))
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An operator's "disagree" at the station: a doubt for an engineer to check, not a label.
    flagged_by: Mapped[str | None] = mapped_column(String(64))
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    flag_note: Mapped[str | None] = mapped_column(Text)
    # Image-quality warnings from the station's guard ("blurred", "drift:brightness", ...).
    flags: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # The file or camera frame name at the station, to trace a result back to its source.
    source_name: Mapped[str | None] = mapped_column(String(255))

    product: Mapped[Product] = relationship(foreign_keys=[product_id])
    station: Mapped[Station | None] = relationship(foreign_keys=[station_id])


class InspectionCount(Base):
    """Pre-aggregate kept current on insert: inspections per product, station, UTC hour,
    verdict and defect type. Statistics read this instead of scanning inspections."""

    __tablename__ = "inspection_counts"
    # Covering index: range scans by hour answer every stats query without touching the table.
    __table_args__ = (
        Index(
            "ix_inspection_counts_cover",
            "hour",
            "product_id",
            "station_id",
            "verdict",
            "defect_type",
            "count",
        ),
    )

    product_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    station_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # NO_STATION if none
    verdict: Mapped[str] = mapped_column(String(8), primary_key=True)
    defect_type: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" if none
    count: Mapped[int] = mapped_column(Integer, default=0)


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class TrainingJob(Base):
    """A training run started from the browser or the API, executed by `qc worker`.

    The web side reads the state from here (never from the queue); the worker writes progress,
    stage, log and a heartbeat while it trains.
    """

    __tablename__ = "training_jobs"
    __table_args__ = (Index("ix_training_jobs_product_state", "product_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    options: Mapped[dict] = mapped_column(JSON)  # mode, size, ... as given to TrainConfig
    dataset_path: Mapped[str | None] = mapped_column(String(255))  # uploaded zip, DATA_DIR-relative
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    stage: Mapped[str | None] = mapped_column(String(128))
    eta_s: Mapped[float | None] = mapped_column(Float)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(128))  # host:pid running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    report_path: Mapped[str | None] = mapped_column(String(255))  # DATA_DIR-relative
    retry_of: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    product: Mapped[Product] = relationship(foreign_keys=[product_id])
    model_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[model_version_id])


class TaughtPhoto(Base):
    """A photo an operator captured in teach mode: a training image, not an inspection."""

    __tablename__ = "taught_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))  # "good" or a defect type
    image_path: Mapped[str] = mapped_column(String(255))  # DATA_DIR-relative
    taught_by: Mapped[str | None] = mapped_column(String(64))
    taught_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
