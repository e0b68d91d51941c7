"""alerts: subscriptions to an area (polygon or admin unit), the published runs already scanned for them, and
the webhook deliveries (signed JSON, retried with backoff)

Revision ID: 0007_alerts
Revises: 0006

Runs published before this revision count as scanned: a new subscription is told only about later runs.
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0007_alerts"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_subscriptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("area", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
        sa.Column("area_kind", sa.String(10), nullable=False),
        sa.Column("area_name", sa.Text, nullable=True),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("email", sa.Text, nullable=True),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("unsubscribe_hash", sa.String(64), nullable=False),
        sa.Column("statuses", ARRAY(sa.String(12)), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("active", sa.Boolean, server_default="true", nullable=False),
        sa.CheckConstraint("area_kind in ('polygon','oblast','raion','hromada')", name="alert_subscriptions_kind"),
    )
    op.create_table(
        "alert_scans",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("subscription_id", sa.String(32),
                  sa.ForeignKey("alert_subscriptions.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_ids", ARRAY(sa.BigInteger), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(12), server_default="pending", nullable=False, index=True),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("details", JSONB, server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("subscription_id", "run_id", name="alert_deliveries_once"),
        sa.CheckConstraint("state in ('pending','delivered','failed','refused')", name="alert_deliveries_state"),
    )
    op.execute("insert into alert_scans (run_id) select id from runs where state = 'published'")


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_scans")
    op.drop_table("alert_subscriptions")
