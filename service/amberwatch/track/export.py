"""Write the monitored sites to GeoPackage/GeoJSON in EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from amberwatch.vector_out import vector_driver, write_vector

# (field, numpy dtype, SQL expression); dates as ISO text, missing numbers as NaN
FIELDS: list[tuple[str, object, str]] = [
    ("site_id", np.int64, "id"),
    ("status", object, "status"),
    ("status_since", object, "to_char(status_since at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"),
    ("first_seen", object, "to_char(first_seen at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"),
    ("last_seen", object, "to_char(last_seen at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"),
    ("last_observed", object, "to_char(last_observed at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"),
    ("area_ha", np.float64, "area_ha"),
    ("max_area_ha", np.float64, "max_area_ha"),
    ("pit_area_ha", np.float64, "pit_area_ha"),
    ("pond_area_ha", np.float64, "pond_area_ha"),
    ("growth_rate_ha_yr", np.float64, "coalesce(growth_rate_ha_yr, 'NaN')"),
    ("disturbance", object, "coalesce(disturbance, '')"),
    ("n_observations", np.int64, "n_observations"),
    ("oblast", object, "coalesce(oblast, '')"),
    ("raion", object, "coalesce(raion, '')"),
    ("hromada", object, "coalesce(hromada, '')"),
    ("protected_areas", object, "coalesce(protected_areas, '')"),
    ("protected_distance_m", np.float64, "coalesce(protected_distance_m, 'NaN')"),
]


def write_sites(session: Session, out: Path) -> int:
    """Write every live site (current extent = last seen extent) to ``out``; returns the number written."""
    vector_driver(out)
    cols = ", ".join(expr for _, _, expr in FIELDS)
    rows = session.execute(text(
        f"select {cols}, ST_AsBinary(geom) from sites where merged_into_id is null and geom is not null order by id"
    )).all()
    columns = {name: np.array([r[i] for r in rows], dtype=dtype) for i, (name, dtype, _) in enumerate(FIELDS)}
    return write_vector(out, "mining_sites", columns, np.array([bytes(r[-1]) for r in rows], dtype=object))
