"""Operator flags apart from reviews, and the stations' image-quality flags.

An operator's "disagree" at the station used to be stored as a review and counted in the savings
model; it is a doubt, not a label, so it gets its own columns (flagged_by, flagged_at, flag_note).
Reviews already made by operator accounts move there. `flags` holds the image-quality warnings
edge stations send with their results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)  # qc.db.models.UTCDateTime stores this type

# Only the station page let operator accounts record a review (the review API is for engineers).
MOVE_OPERATOR_REVIEWS = """
UPDATE inspections SET
    flagged_by = reviewed_by, flagged_at = reviewed_at, flag_note = review_note,
    review = NULL, review_label = NULL, review_note = NULL, reviewed_by = NULL, reviewed_at = NULL
WHERE reviewed_by IN (SELECT username FROM users WHERE role = 'operator')
"""
# Downgrade: a flag nobody reviewed becomes the review it used to be (the opposite label).
FLAGS_BACK_TO_REVIEWS = """
UPDATE inspections SET
    review = 'disagree',
    review_label = CASE WHEN verdict = 'fail' THEN 'good' ELSE 'defect' END,
    review_note = flag_note, reviewed_by = flagged_by, reviewed_at = flagged_at
WHERE flagged_by IS NOT NULL AND review IS NULL
"""


def upgrade() -> None:
    op.add_column("inspections", sa.Column("flagged_by", sa.String(64)))
    op.add_column("inspections", sa.Column("flagged_at", UTC))
    op.add_column("inspections", sa.Column("flag_note", sa.Text()))
    op.add_column("inspections", sa.Column("flags", sa.JSON()))
    op.execute(MOVE_OPERATOR_REVIEWS)


def downgrade() -> None:
    op.execute(FLAGS_BACK_TO_REVIEWS)
    with op.batch_alter_table("inspections") as batch:
        for name in ("flags", "flag_note", "flagged_at", "flagged_by"):
            batch.drop_column(name)
