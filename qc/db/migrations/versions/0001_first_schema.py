"""First schema: users, stations, products, model versions and activations, inspections and the
hourly inspection counts that statistics read.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)  # qc.db.models.UTCDateTime stores this type


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def upgrade() -> None:
    _create_accounts()
    _create_products_and_models()
    _create_inspections()


def _create_accounts() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("api_key_hash", sa.String(64), unique=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_login_at", UTC),
    )
    op.create_table(
        "stations",
        _id(),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("line", sa.String(64)),
        sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC),
    )


def _create_products_and_models() -> None:
    op.create_table(
        "products",
        _id(),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("sku", sa.String(64)),
        *[
            sa.Column(name, sa.Float(), nullable=False)
            for name in (
                "manual_inspection_cost",
                "manual_miss_rate",
                "escape_cost",
                "internal_failure_cost",
                "false_reject_cost",
                "qc_cost_per_unit",
            )
        ],
        sa.Column("active_model_id", sa.Integer()),  # FK added below: mutual references
        sa.Column("created_at", UTC, nullable=False),
    )
    op.create_table(
        "model_versions",
        _id(),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("uploaded_by", sa.String(64)),
        sa.Column("uploaded_at", UTC, nullable=False),
        sa.UniqueConstraint("product_id", "sha256", name="uq_model_versions_sha"),
    )
    op.create_index("ix_model_versions_product_id", "model_versions", ["product_id"])
    with op.batch_alter_table("products") as batch:
        batch.create_foreign_key(
            "fk_products_active_model", "model_versions", ["active_model_id"], ["id"]
        )
    op.create_table(
        "model_activations",
        _id(),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column(
            "model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("at", UTC, nullable=False),
    )
    op.create_index("ix_model_activations_product_id", "model_activations", ["product_id"])


def _create_inspections() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id")),
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id")),
        sa.Column("model_version", sa.String(64)),
        sa.Column("lot", sa.String(64)),
        sa.Column("serial", sa.String(128)),
        sa.Column("operator", sa.String(64)),
        sa.Column("inspected_at", UTC, nullable=False),
        sa.Column("received_at", UTC, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("raw_score", sa.Float()),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("defect_type", sa.String(64)),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("image_path", sa.String(255)),
        sa.Column("heatmap_path", sa.String(255)),
        sa.Column("review", sa.String(8)),
        sa.Column("review_label", sa.String(64)),
        sa.Column("review_note", sa.Text()),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("reviewed_at", UTC),
    )
    op.create_index("ix_inspections_product_time", "inspections", ["product_id", "inspected_at"])
    op.create_index("ix_inspections_station_time", "inspections", ["station_id", "inspected_at"])
    op.create_index("ix_inspections_time", "inspections", ["inspected_at"])
    op.create_index("ix_inspections_serial", "inspections", ["serial"])
    op.create_index("ix_inspections_review", "inspections", ["review", "model_version_id"])
    op.create_table(
        "inspection_counts",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("hour", UTC, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("defect_type", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", "hour", "station_id", "verdict", "defect_type"),
    )
    op.create_index(
        "ix_inspection_counts_cover",
        "inspection_counts",
        ["hour", "product_id", "station_id", "verdict", "defect_type", "count"],
    )


def downgrade() -> None:
    op.drop_table("inspection_counts")
    op.drop_table("inspections")
    op.drop_table("model_activations")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint("fk_products_active_model", type_="foreignkey")
    op.drop_table("model_versions")
    op.drop_table("products")
    op.drop_table("stations")
    op.drop_table("users")
