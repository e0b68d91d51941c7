"""runs: clear_sky, the clear-sky footprint of the run's scene (EPSG:4326), so site tracking opens no rasters

Revision ID: 0006
Revises: 0005

Runs published before this revision get it from their scene's cloud mask (when the file is still there); a run
without one counts as clear everywhere in its scene footprint, as a scene without cloud mask always did.
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("clear_sky", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326,
                                                                      spatial_index=False), nullable=True))
    from amberwatch.detect.clearsky import clear_sky_footprint

    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "select rs.run_id, s.cloud_mask_path from run_scenes rs join scenes s on s.id = rs.scene_id"
        " where s.cloud_mask_path is not null")).all()
    for run_id, mask_path in rows:
        footprint = clear_sky_footprint(mask_path)
        if footprint is not None:
            conn.execute(sa.text("update runs set clear_sky = ST_Multi(ST_GeomFromWKB(:g, 4326)) where id = :id"),
                         {"g": footprint.wkb, "id": run_id})


def downgrade() -> None:
    op.drop_column("runs", "clear_sky")
