"""STAC monitors, their items and scheduler runs (issue 12); pgstac (the STAC API store) in its own schema

Revision ID: 0011_stac_monitors
Revises: 0010_accuracy

pgstac's schema is pypgstac's own migration SQL (pinned pypgstac in pyproject.toml), applied as shipped: it creates
the ``pgstac`` schema, its roles (pgstac_admin/read/ingest, once per cluster) and the extensions btree_gist and
unaccent. A later pypgstac brings an incremental ``pgstac.A-B.sql``: apply it in a new revision before raising the pin.
"""

from __future__ import annotations

from pathlib import Path

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011_stac_monitors"
down_revision = "0010_accuracy"
branch_labels = None
depends_on = None
PGSTAC_VERSION = "0.10.0"


def _pgstac_sql() -> str:
    import pypgstac

    return (Path(pypgstac.__file__).parent / "migrations" / f"pgstac.{PGSTAC_VERSION}.sql").read_text()


def upgrade() -> None:
    op.create_table(
        "stac_monitors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("stac_url", sa.Text, nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("aoi", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("cloud_max", sa.Float, nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean, server_default="true", nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "stac_monitor_runs",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("monitor_id", sa.Integer, sa.ForeignKey("stac_monitors.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("trigger", sa.String(12), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("found", sa.Integer, server_default="0", nullable=False),
        sa.Column("new", sa.Integer, server_default="0", nullable=False),
        sa.Column("skipped", sa.Integer, server_default="0", nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "stac_monitor_items",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("monitor_id", sa.Integer, sa.ForeignKey("stac_monitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.String(300), nullable=False),
        sa.Column("collection", sa.String(200), nullable=True),
        sa.Column("acquired", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cloud_cover", sa.Float, nullable=True),
        sa.Column("status", sa.String(10), server_default="found", nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("item", JSONB, nullable=False),
        sa.Column("scene_id", sa.Integer, sa.ForeignKey("scenes.id", ondelete="SET NULL"), nullable=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("queue_job_id", sa.BigInteger, nullable=True),
        sa.Column("found_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("monitor_id", "item_id", name="stac_monitor_items_once"),
        sa.CheckConstraint("status in ('found','processed','skipped','failed')", name="stac_monitor_items_status"),
    )
    # pgstac: the raw DBAPI cursor (the SQL holds '%' and ':'); it sets role and search_path: put both back
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_pgstac_sql())
    cursor.execute("RESET ROLE; RESET search_path")


def downgrade() -> None:
    op.drop_table("stac_monitor_items")
    op.drop_table("stac_monitor_runs")
    op.drop_table("stac_monitors")
    op.execute("drop schema if exists pgstac cascade")
