"""accounts (API keys, audit log), queued runs and tracking jobs, multi-part scene footprints, scene bounds

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role in ('admin','analyst','moderator','validator')", name="api_keys_role_check"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False, index=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False, index=True),
        sa.Column("state", sa.String(12), nullable=False, index=True),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("parameters", JSONB, nullable=False, server_default="{}"),
        sa.Column("result", JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("queue_job_id", sa.BigInteger, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state in ('queued','running','succeeded','failed')", name="jobs_state_check"),
    )
    op.drop_constraint("runs_state_check", "runs")
    op.create_check_constraint("runs_state_check", "runs", "state in ('pending','queued','running','published','failed')")
    op.add_column("runs", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("queue_job_id", sa.BigInteger, nullable=True))
    op.add_column("runs", sa.Column("created_by", sa.String(100), nullable=True))
    op.add_column("scenes", sa.Column("bounds", sa.ARRAY(sa.Float), nullable=True))
    op.execute("alter table scenes alter column footprint type geometry(MultiPolygon, 4326) using ST_Multi(footprint)")
    op.execute("update scenes set bounds = array(select jsonb_array_elements_text(stac_item->'properties'->'proj:bbox')"
               "::float8) where stac_item->'properties' ? 'proj:bbox'")


def downgrade() -> None:
    op.execute("alter table scenes alter column footprint type geometry(Polygon, 4326) using ST_GeometryN(footprint, 1)")
    op.drop_column("scenes", "bounds")
    op.drop_column("runs", "created_by")
    op.drop_column("runs", "queue_job_id")
    op.drop_column("runs", "attempts")
    op.drop_constraint("runs_state_check", "runs")
    op.create_check_constraint("runs_state_check", "runs", "state in ('pending','running','published','failed')")
    op.drop_table("jobs")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
