"""STAC monitors, their items and scheduler runs (issue 12)

Revision ID: 0011_stac_monitors
Revises: 0010_accuracy
"""

from __future__ import annotations

revision = "0011_stac_monitors"
down_revision = "0010_accuracy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
