"""Write monitored sites (as read by ``store.queries.sites.export_sites``) to GeoPackage/GeoJSON in EPSG:4326."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from amberwatch.vector_out import write_vector

LAYER = "mining_sites"
# numpy dtype of each exported field (dates and text as ISO strings / '', missing numbers as NaN)
DTYPES: dict[str, Any] = {
    "site_id": np.int64, "status": object, "status_since": object, "first_seen": object, "last_seen": object,
    "last_observed": object, "area_ha": np.float64, "max_area_ha": np.float64, "pit_area_ha": np.float64,
    "pond_area_ha": np.float64, "growth_rate_ha_yr": np.float64, "disturbance": object, "n_observations": np.int64,
    "oblast": object, "raion": object, "hromada": object, "protected_areas": object, "protected_distance_m": np.float64,
}


def write_site_rows(out: Path, fields: Sequence[str], rows: Sequence[Sequence[Any]], wkb: Sequence[bytes]) -> int:
    """Replace ``out`` with one ``mining_sites`` layer; returns the number of sites written."""
    columns = {name: np.array([r[i] for r in rows], dtype=DTYPES.get(name, object)) for i, name in enumerate(fields)}
    return write_vector(out, LAYER, columns, np.array(list(wkb), dtype=object))
