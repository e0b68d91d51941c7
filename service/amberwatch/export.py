"""Write a run's polygons to GeoPackage or GeoJSON in EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amberwatch.store.db import Store
from amberwatch.store.queries import detections as detection_queries
from amberwatch.vector_out import vector_driver, write_vector


def write_run(store: Store, run_id: int, out: Path) -> int:
    """Write every detection of ``run_id`` to ``out``; returns the number of features written."""
    vector_driver(out)
    with store.engine.connect() as conn:
        rows = detection_queries.of_run(conn, run_id)
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
