"""The station's file or frame name of each result (`source_name`), so an engineer can trace a
result back to the file at the station. Results recorded before keep NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("source_name", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("source_name")
