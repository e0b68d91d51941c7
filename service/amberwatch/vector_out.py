"""One way to write polygons with attributes to GeoPackage or GeoJSON in EPSG:4326 (pyogrio, no geopandas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio.raw

from amberwatch.errors import InputError

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def vector_driver(path: Path) -> str:
    """The OGR driver for ``path``'s suffix; a clear InputError for anything else (check before long work)."""
    driver = DRIVERS.get(Path(path).suffix.lower())
    if driver is None:
        raise InputError(f"{path}: unsupported output format (use a .gpkg or .geojson file name)")
    return driver


def write_vector(path: Path, layer: str, columns: dict[str, np.ndarray], wkb: np.ndarray,
                 geometry_type: str = "MultiPolygon", promote_to_multi: bool = False) -> int:
    """Replace ``path`` with one layer of ``wkb`` geometries (EPSG:4326) and ``columns``; returns the count."""
    path = Path(path)
    driver = vector_driver(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    pyogrio.raw.write(str(path), geometry=wkb, field_data=list(columns.values()), fields=list(columns),
                      crs="EPSG:4326", geometry_type=geometry_type, promote_to_multi=promote_to_multi,
                      driver=driver, layer=layer)
    return len(wkb)
