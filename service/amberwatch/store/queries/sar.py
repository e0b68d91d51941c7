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


def evidence_in_each(session: Session, envelopes_wkb: Sequence[bytes]) -> list[list[SarEvidenceRow]]:
    """For each envelope (EPSG:4326 WKB), in one query: the radar dates whose footprint covers it, with the geodesic
    hectares of their change polygons inside it; the latest pair per date counts once."""
    if not envelopes_wkb:
        return []
    rows = session.execute(text("""
        WITH env AS (SELECT e.i, ST_GeomFromWKB(e.wkb, 4326) AS g
                     FROM unnest(CAST(:envs AS bytea[])) WITH ORDINALITY AS e(wkb, i))
        SELECT env.i, o.acquired,
               COALESCE(SUM(ST_Area(ST_Intersection(c.geom, env.g)::geography)) / 10000.0, 0.0) AS change_ha
        FROM env JOIN sar_observations o ON ST_Covers(o.footprint, ST_PointOnSurface(env.g))
        LEFT JOIN sar_changes c ON c.sar_observation_id = o.id AND ST_Intersects(c.geom, env.g)
        GROUP BY env.i, o.id, o.acquired
        ORDER BY env.i, o.acquired, o.id
    """), {"envs": list(envelopes_wkb)}).all()
    by_date: list[dict[datetime, float]] = [{} for _ in envelopes_wkb]
    for i, acquired, change_ha in rows:
        by_date[int(i) - 1][acquired] = float(change_ha)
    return [[SarEvidenceRow(t, ha) for t, ha in sorted(dates.items())] for dates in by_date]
