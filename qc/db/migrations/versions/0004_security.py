"""Security hardening: stations are linked to the products they inspect (their key downloads only
those models), and users carry a session epoch that log-out and password changes bump, ending
every session signed before.

Existing stations are linked to every existing product, so an upgrade stops no station; narrow
the links with `qc stations set --name S --product P`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "station_products",
        sa.Column("station_id", sa.Integer,
                  sa.ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("product_id", sa.Integer,
                  sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    )
    op.execute(
        "INSERT INTO station_products (station_id, product_id) "
        "SELECT stations.id, products.id FROM stations CROSS JOIN products"
    )
    op.add_column(
        "users", sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
    op.drop_table("station_products")
