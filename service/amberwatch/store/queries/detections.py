"""Detections: the polygons of a run, stored when it is published and read for export."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon
from sqlalchemy import Row, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from amberwatch.store.models import Detection

RUN_DETECTIONS = text(
    "select d.id, d.class, d.area_ha, d.confidence, d.observed_at, d.run_id, d.site_id, "
    "coalesce(m.name || '@' || m.version, '') as model_version, s.scene_key, ST_AsBinary(d.geom) as wkb "
    "from detections d join runs r on r.id = d.run_id left join model_versions m on m.id = r.model_version_id "
    "join scenes s on s.id = d.scene_id where d.run_id = :run order by d.id"
)


def of_run(conn: Connection, run_id: int) -> list[Row]:
    """Every detection of ``run_id`` with its model version, scene key and WKB geometry (EPSG:4326)."""
    return list(conn.execute(RUN_DETECTIONS, {"run": run_id}).all())


class NewDetection(NamedTuple):
    """One polygon of a run to store (see ``amberwatch.types.DetectedPolygon``); ``geom`` in EPSG:4326."""

    cls: str
    confidence: float
    area_ha: float
    change_class: str | None
    change_fraction: float | None
    geom: MultiPolygon


def add_detections(session: Session, run_id: int, scene_id: int, observed_at: datetime,
                   detections: Iterable[NewDetection]) -> int:
    """Insert the run's detections (observed at the scene's acquisition) and flush; returns how many."""
    n = 0
    for det in detections:
        session.add(Detection(
            run_id=run_id, scene_id=scene_id, cls=det.cls, confidence=float(det.confidence),
            area_ha=float(det.area_ha), observed_at=observed_at,
            change_class=det.change_class, change_fraction=det.change_fraction,
            geom=from_shape(det.geom, srid=4326),
        ))
        n += 1
    session.flush()
    return n


COPY_DETECTIONS = (
    "copy detections (run_id, scene_id, class, confidence, area_ha, observed_at, change_class, change_fraction, geom) "
    "from stdin"
)


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def bulk_insert_detections(conn: Connection, run_id: int, scene_id: int, observed_at: datetime,
                           detections: Iterable[NewDetection], chunk: int = 100_000) -> int:
    """Insert many detections of one run with ``COPY`` (hex EWKB geometries, ``chunk`` rows per copy), then
    ``analyze detections``; returns how many. For bulk loads (benchmarks, imports) where ``add_detections``
    (one ORM object per row) is too slow: same columns, same checks (the class constraint, SRID 4326)."""
    import io

    import numpy as np
    import shapely

    raw = conn.connection.dbapi_connection
    if raw is None:  # pragma: no cover - a live Connection always has one
        raise RuntimeError("no DBAPI connection")
    when = observed_at.isoformat()
    total = 0
    batch: list[NewDetection] = []

    def flush() -> None:
        geoms = shapely.set_srid(np.asarray([d.geom for d in batch], dtype=object), 4326)
        wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
        buf = io.StringIO()
        for det, hexwkb in zip(batch, wkb, strict=True):
            buf.write(f"{run_id}\t{scene_id}\t{_copy_field(det.cls)}\t{float(det.confidence)!r}\t"
                      f"{float(det.area_ha)!r}\t{when}\t{_copy_field(det.change_class)}\t"
                      f"{_copy_field(det.change_fraction)}\t{hexwkb}\n")
        buf.seek(0)
        cur = raw.cursor()
        try:
            if hasattr(cur, "copy_expert"):  # psycopg2
                cur.copy_expert(COPY_DETECTIONS, buf)
            else:  # psycopg 3 (a postgresql+psycopg:// database URL)
                with cur.copy(COPY_DETECTIONS) as copy:  # type: ignore[attr-defined]
                    copy.write(buf.getvalue())
        finally:
            cur.close()
        batch.clear()

    for det in detections:
        batch.append(det)
        if len(batch) >= chunk:
            total += len(batch)
            flush()
    if batch:
        total += len(batch)
        flush()
    conn.execute(text("analyze detections"))
    return total
