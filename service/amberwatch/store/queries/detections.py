"""Detections: the polygons of a run, for export."""

from __future__ import annotations

from sqlalchemy import Row, text
from sqlalchemy.engine import Connection

RUN_DETECTIONS = text(
    "select d.id, d.class, d.area_ha, d.confidence, d.observed_at, d.run_id, d.site_id, "
    "coalesce(m.name || '@' || m.version, '') as model_version, s.scene_key, ST_AsBinary(d.geom) as wkb "
    "from detections d join runs r on r.id = d.run_id left join model_versions m on m.id = r.model_version_id "
    "join scenes s on s.id = d.scene_id where d.run_id = :run order by d.id"
)


def of_run(conn: Connection, run_id: int) -> list[Row]:
    """Every detection of ``run_id`` with its model version, scene key and WKB geometry (EPSG:4326)."""
    return list(conn.execute(RUN_DETECTIONS, {"run": run_id}).all())
