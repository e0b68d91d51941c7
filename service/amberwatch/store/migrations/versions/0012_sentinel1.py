"""Sentinel-1 scenes and SAR observations (issue 13)

Revision ID: 0012_sentinel1
Revises: 0011_stac_monitors
"""

from __future__ import annotations

revision = "0012_sentinel1"
down_revision = "0011_stac_monitors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
