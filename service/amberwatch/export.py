"""Write a run's polygons to GeoPackage or GeoJSON in EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio.raw
from sqlalchemy import text

from amberwatch.errors import InputError
from amberwatch.store.db import Store

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def write_run(store: Store, run_id: int, out: Path) -> int:
    """Write every detection of ``run_id`` to ``out``; returns the number of features written."""
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise InputError(f"{out}: unsupported output format (use .gpkg or .geojson)")
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "select d.id, d.class, d.area_ha, d.confidence, d.observed_at, d.run_id, d.site_id, "
            "coalesce(m.name || '@' || m.version, '') as model_version, s.scene_key, ST_AsBinary(d.geom) as wkb "
            "from detections d join runs r on r.id = d.run_id left join model_versions m on m.id = r.model_version_id "
            "join scenes s on s.id = d.scene_id where d.run_id = :run order by d.id"
        ), {"run": run_id}).all()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    fields = ["detection_id", "class", "area_ha", "confidence", "observed_at", "run_id", "site_id", "model_version",
              "scene_key"]
    columns = [
        np.array([r.id for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=object),
        np.array([r.area_ha for r in rows], dtype=np.float64),
        np.array([r.confidence for r in rows], dtype=np.float64),
        np.array([r.observed_at.isoformat() for r in rows], dtype=object),
        np.array([r.run_id for r in rows], dtype=np.int64),
        np.array([r.site_id if r.site_id is not None else -1 for r in rows], dtype=np.int64),
        np.array([r.model_version for r in rows], dtype=object),
        np.array([r.scene_key for r in rows], dtype=object),
    ]
    geometry = np.array([bytes(r.wkb) for r in rows], dtype=object)
    pyogrio.raw.write(str(out), geometry=geometry, field_data=columns, fields=fields, crs="EPSG:4326",
                      geometry_type="MultiPolygon", driver=driver, layer=f"run_{run_id}")
    return len(rows)
