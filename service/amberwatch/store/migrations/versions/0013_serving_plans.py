"""serving plans: published_detections filters published runs without a join the planner drives, and the indexes
of detections fit the OGC requests (issue 11)

Revision ID: 0013_serving_plans
Revises: 0012_sentinel1

Measured on 1,000,000 detections in 2 runs (bench/bench_serving.py's data): a WMS GetMap of a 0.1° box (MapServer's
``ST_Intersects(geom, box) and observed_at between ...``) took 45–70 ms of SQL, because

* the view joined ``runs ... and r.state = 'published'``: a nested loop over the published runs, each probing
  ``ix_detections_run_id`` (500,000 rows per run) and ANDing that bitmap with the geometry index's 700 rows;
* with the TIME filter the planner ANDed ``ix_detections_observed_at`` (half the table) the same way: PostGIS'
  ``ST_Intersects`` is costed so high that any bitmap that might drop a few rows first looks worth building.

Now the view keeps the rows of published runs with ``run_id = any(<the published run ids, one InitPlan>)`` and
left-joins runs, model versions and scenes only for their columns: the geometry index alone drives a spatial query
(2–8 ms for the same map). ``ix_detections_observed_at`` is dropped: every query on detections by time is also
spatial (tiles, WMS TIME) or by run. ``ix_detections_run_id`` becomes ``(run_id, id)``, so a version's pages
(``run_id=<id>``, ordered by id as OGC API Features pages are) are read in index order.
"""

from __future__ import annotations

from alembic import op

revision = "0013_serving_plans"
down_revision = "0012_sentinel1"
branch_labels = None
depends_on = None

_RANK = ("case vi.status when 'confirmed' then 0 when 'rejected' then 0 when 'disputed' then 1 "
         "when 'pending' then 2 else 3 end, vi.id desc")
_SITE_STATUS = f"""coalesce((select vi.status from validation_items vi where vi.site_id = d.site_id
                   order by {_RANK} limit 1), 'unvalidated')"""

# the columns of 0009's DETECTIONS_V3, in the same order (create or replace view keeps the run_<id> views)
_COLUMNS = f"""
select d.id, d.run_id, m.name || '@' || m.version as model_version, d.class, d.confidence, d.area_ha,
       d.observed_at, d.site_id, s.scene_key, d.change_class, d.change_fraction, d.geom,
       coalesce((select vi.status from validation_items vi where vi.detection_id = d.id and vi.status <> 'unvalidated'
                 order by {_RANK} limit 1),
                {_SITE_STATUS})::varchar(12) as validation_status,
       exists (select 1 from field_checks fc where fc.site_id = d.site_id) as field_checked
"""
DETECTIONS_V4 = _COLUMNS + """
from detections d
left join runs r on r.id = d.run_id
left join model_versions m on m.id = r.model_version_id
left join scenes s on s.id = d.scene_id
where d.run_id = any((select array_agg(id) from runs where state = 'published')::integer[])
"""
DETECTIONS_V3 = _COLUMNS + """
from detections d
join runs r on r.id = d.run_id and r.state = 'published'
left join model_versions m on m.id = r.model_version_id
join scenes s on s.id = d.scene_id
"""


def upgrade() -> None:
    op.execute(f"create or replace view published_detections as {DETECTIONS_V4}")
    op.drop_index("ix_detections_observed_at", table_name="detections")
    op.drop_index("ix_detections_run_id", table_name="detections")
    op.create_index("ix_detections_run_id_id", "detections", ["run_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_detections_run_id_id", table_name="detections")
    op.create_index("ix_detections_run_id", "detections", ["run_id"])
    op.create_index("ix_detections_observed_at", "detections", ["observed_at"])
    op.execute(f"create or replace view published_detections as {DETECTIONS_V3}")
