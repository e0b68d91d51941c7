"""Sentinel-1 scenes and SAR observations (issue 13)

Revision ID: 0012_sentinel1
Revises: 0011_stac_monitors

``sar_observations``: one Sentinel-1 date compared with an earlier one (footprint, log-ratio threshold);
``sar_changes``: its change polygons (water appeared / disappeared, backscatter decrease / increase).
``site_observations`` gains ``sensor`` ('optical' or 'sentinel1') and ``sar_change_ha`` (hectares of radar change in
the site's envelope on a radar date): tracking uses them on dates Sentinel-2 was cloudy (docs/monitoring.md).
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0012_sentinel1"
down_revision = "0011_stac_monitors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sar_observations",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("scene_key", sa.String(160), nullable=False),
        sa.Column("before_scene_key", sa.String(160), nullable=False),
        sa.Column("sensor", sa.String(16), nullable=False),
        sa.Column("acquired", sa.DateTime(timezone=True), nullable=False),
        sa.Column("footprint", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("polarisation", sa.String(2), nullable=False),
        sa.Column("threshold_db", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("scene_key", "before_scene_key", name="sar_observations_pair_key"),
    )
    op.create_index("ix_sar_observations_footprint", "sar_observations", ["footprint"], postgresql_using="gist")
    op.create_table(
        "sar_changes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("sar_observation_id", sa.BigInteger, sa.ForeignKey("sar_observations.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("cls", sa.String(20), nullable=False),
        sa.Column("geom", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    )
    op.create_index("ix_sar_changes_geom", "sar_changes", ["geom"], postgresql_using="gist")
    op.add_column("site_observations",
                  sa.Column("sensor", sa.String(12), server_default="optical", nullable=False))
    op.add_column("site_observations", sa.Column("sar_change_ha", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("site_observations", "sar_change_ha")
    op.drop_column("site_observations", "sensor")
    op.drop_table("sar_changes")
    op.drop_table("sar_observations")
