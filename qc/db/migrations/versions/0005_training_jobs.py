"""Training jobs run by `qc worker` and photos taught at the station (training images, not
inspections).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)  # qc.db.models.UTCDateTime stores this type


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("dataset_path", sa.String(255)),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(128)),
        sa.Column("eta_s", sa.Float()),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(128)),
        sa.Column("heartbeat_at", UTC),
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id")),
        sa.Column("report_path", sa.String(255)),
        sa.Column("retry_of", sa.Integer()),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("started_at", UTC),
        sa.Column("finished_at", UTC),
    )
    op.create_index("ix_training_jobs_product_state", "training_jobs", ["product_id", "state"])
    op.create_table(
        "taught_photos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("image_path", sa.String(255), nullable=False),
        sa.Column("taught_by", sa.String(64)),
        sa.Column("taught_at", UTC, nullable=False),
    )
    op.create_index("ix_taught_photos_product_id", "taught_photos", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_taught_photos_product_id", "taught_photos")
    op.drop_table("taught_photos")
    op.drop_index("ix_training_jobs_product_state", "training_jobs")
    op.drop_table("training_jobs")
