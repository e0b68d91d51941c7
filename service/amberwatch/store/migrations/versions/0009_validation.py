"""volunteer validation votes, gold items, expert decisions and field checks (issue 10)

Revision ID: 0009_validation
Revises: 0008_crowd_reports
"""

from __future__ import annotations

revision = "0009_validation"
down_revision = "0008_crowd_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
