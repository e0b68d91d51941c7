"""accuracy-assessment samples and reports (issue 10)

Revision ID: 0010_accuracy
Revises: 0009_validation
"""

from __future__ import annotations

revision = "0010_accuracy"
down_revision = "0009_validation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
