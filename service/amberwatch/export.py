"""Write a run's polygons to GeoPackage or GeoJSON in EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import text

from amberwatch.store.db import Store
from amberwatch.vector_out import vector_driver, write_vector


def write_run(store: Store, run_id: int, out: Path) -> int:
    """Write every detection of ``run_id`` to ``out``; returns the number of features written."""
    vector_driver(out)
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "select d.id, d.class, d.area_ha, d.confidence, d.observed_at, d.run_id, d.site_id, "
            "coalesce(m.name || '@' || m.version, '') as model_version, s.scene_key, ST_AsBinary(d.geom) as wkb "
            "from detections d join runs r on r.id = d.run_id left join model_versions m on m.id = r.model_version_id "
            "join scenes s on s.id = d.scene_id where d.run_id = :run order by d.id"
        ), {"run": run_id}).all()
    columns = {
        "detection_id": np.array([r.id for r in rows], dtype=np.int64),
        "class": np.array([r[1] for r in rows], dtype=object),
        "area_ha": np.array([r.area_ha for r in rows], dtype=np.float64),
        "confidence": np.array([r.confidence for r in rows], dtype=np.float64),
        "observed_at": np.array([r.observed_at.isoformat() for r in rows], dtype=object),
        "run_id": np.array([r.run_id for r in rows], dtype=np.int64),
        "site_id": np.array([r.site_id if r.site_id is not None else -1 for r in rows], dtype=np.int64),
        "model_version": np.array([r.model_version for r in rows], dtype=object),
        "scene_key": np.array([r.scene_key for r in rows], dtype=object),
    }
    return write_vector(out, f"run_{run_id}", columns, np.array([bytes(r.wkb) for r in rows], dtype=object))
