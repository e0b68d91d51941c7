"""crowd reports, their media and moderation (issue 10)

Revision ID: 0008_crowd_reports
Revises: 0007_alerts

``crowd_reports`` holds the report with its personal data (``client_ip``, ``contact``: never public, cleared by the
retention purge); ``crowd_report_media`` the checked files (generated names under the data directory). The view
``public_reports`` is what the public ``reports`` layer reads: approved reports only, without personal data.
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0008_crowd_reports"
down_revision = "0007_alerts"
branch_labels = None
depends_on = None

PUBLIC_VIEW = """
create view public_reports as
select r.id, r.observed_at, r.created_at as reported_at, r.moderated_at as approved_at, r.text,
       r.location_source,
       (select count(*) from crowd_report_media m where m.report_id = r.id)::integer as n_media,
       (select string_agg('/api/reports/' || r.id || '/media/' || m.id, ' ' order by m.id)
          from crowd_report_media m where m.report_id = r.id) as media,
       r.geom
from crowd_reports r
where r.status = 'approved'
"""


def upgrade() -> None:
    op.create_table(
        "crowd_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("geom", geoalchemy2.Geometry("POINT", srid=4326, spatial_index=True), nullable=False),
        sa.Column("location_source", sa.String(10), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False, index=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False, index=True),
        sa.Column("status", sa.String(10), server_default="pending", nullable=False, index=True),
        sa.Column("moderated_by", sa.String(100), nullable=True),
        sa.Column("moderated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("contact", sa.Text, nullable=True),  # personal: moderators only, purged
        sa.Column("client_ip", sa.String(64), nullable=True),  # personal: nobody reads it back, purged
        sa.Column("personal_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status in ('pending','approved','rejected')", name="crowd_reports_status"),
        sa.CheckConstraint("location_source in ('map','gps','exif')", name="crowd_reports_location_source"),
        sa.CheckConstraint("status <> 'rejected' or reason is not null", name="crowd_reports_rejection_reason"),
    )
    op.create_table(
        "crowd_report_media",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("report_id", sa.Integer, sa.ForeignKey("crowd_reports.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("file_name", sa.String(80), nullable=False, unique=True),
        sa.Column("poster_name", sa.String(80), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("gps_kept", sa.Boolean, server_default="false", nullable=False),
        sa.CheckConstraint("kind in ('image','video')", name="crowd_report_media_kind"),
    )
    op.execute(PUBLIC_VIEW)
    op.execute("comment on view public_reports is 'AmberWatch OGC layer reports: approved crowd reports, "
               "without personal data'")


def downgrade() -> None:
    op.execute("drop view if exists public_reports")
    op.drop_table("crowd_report_media")
    op.drop_table("crowd_reports")
