"""Sentinel-1 observations and their change polygons (``sar_observations``, ``sar_changes``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from amberwatch.store.models import SarChange, SarObservation


class SarEvidenceRow(NamedTuple):
    """A radar date that covers a site envelope and the hectares of change inside it (0.0 when none)."""

    acquired: datetime
    change_ha: float


def save_observation(session: Session, *, scene_key: str, before_scene_key: str, sensor: str, acquired: datetime,
                     footprint: MultiPolygon, polarisation: str, threshold_db: float,
                     changes: Sequence[tuple[str, MultiPolygon]]) -> int:
    """Store one radar pair (replacing an earlier result for the same pair) with its change polygons
    (class, EPSG:4326 multipolygon); returns its id."""
    session.execute(delete(SarObservation).where(SarObservation.scene_key == scene_key,
                                                 SarObservation.before_scene_key == before_scene_key))
    obs = SarObservation(scene_key=scene_key, before_scene_key=before_scene_key, sensor=sensor, acquired=acquired,
                         footprint=from_shape(footprint, srid=4326),
                         polarisation=polarisation, threshold_db=threshold_db)
    session.add(obs)
    session.flush()
    for cls, geom in changes:
        session.add(SarChange(sar_observation_id=obs.id, cls=cls, geom=from_shape(geom, srid=4326)))
    session.flush()
    return int(obs.id)


def evidence_in(session: Session, envelope_wkb: bytes) -> list[SarEvidenceRow]:
    """Radar dates whose footprint covers the envelope (EPSG:4326 WKB), with the geodesic hectares of their change
    polygons inside it; the latest pair per date counts once."""
    rows = session.execute(text("""
        WITH env AS (SELECT ST_GeomFromWKB(:env, 4326) AS g)
        SELECT o.acquired,
               COALESCE(SUM(ST_Area(ST_Intersection(c.geom, env.g)::geography)) / 10000.0, 0.0) AS change_ha
        FROM sar_observations o CROSS JOIN env
        LEFT JOIN sar_changes c ON c.sar_observation_id = o.id AND ST_Intersects(c.geom, env.g)
        WHERE ST_Covers(o.footprint, ST_PointOnSurface(env.g))
        GROUP BY o.id, o.acquired
        ORDER BY o.acquired, o.id
    """), {"env": envelope_wkb}).all()
    by_date: dict[datetime, float] = {}
    for acquired, change_ha in rows:
        by_date[acquired] = float(change_ha)
    return [SarEvidenceRow(t, ha) for t, ha in sorted(by_date.items())]
