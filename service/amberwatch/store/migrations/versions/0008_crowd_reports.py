"""crowd reports, their media and moderation (issue 10)

Revision ID: 0008_crowd_reports
Revises: 0007_alerts
"""

from __future__ import annotations

revision = "0008_crowd_reports"
down_revision = "0007_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
