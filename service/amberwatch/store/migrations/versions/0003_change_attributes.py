"""detections: change-model attributes (change_class, change_fraction)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEW_V2 = """
create view published_detections as
select d.id, d.run_id, m.name || '@' || m.version as model_version, d.class, d.confidence, d.area_ha,
       d.observed_at, d.site_id, s.scene_key, d.change_class, d.change_fraction, d.geom
from detections d
join runs r on r.id = d.run_id and r.state = 'published'
left join model_versions m on m.id = r.model_version_id
join scenes s on s.id = d.scene_id
"""

VIEW_V1 = """
create view published_detections as
select d.id, d.run_id, m.name || '@' || m.version as model_version, d.class, d.confidence, d.area_ha,
       d.observed_at, d.site_id, s.scene_key, d.geom
from detections d
join runs r on r.id = d.run_id and r.state = 'published'
left join model_versions m on m.id = r.model_version_id
join scenes s on s.id = d.scene_id
"""


def upgrade() -> None:
    # run_<id> views depend on this view: the next publish.refresh recreates them
    op.execute("drop view if exists published_detections cascade")
    op.add_column("detections", sa.Column("change_class", sa.String(24), nullable=True))
    op.add_column("detections", sa.Column("change_fraction", sa.Float(), nullable=True))
    op.execute(VIEW_V2)


def downgrade() -> None:
    op.execute("drop view if exists published_detections cascade")
    op.drop_column("detections", "change_fraction")
    op.drop_column("detections", "change_class")
    op.execute(VIEW_V1)
