"""The one definition of area in AmberWatch: geodesic area on the WGS84 ellipsoid, in hectares.

Every area the service computes or stores (detections, sites, observations, events, statistics) is the area of
the geometry in EPSG:4326 measured on the WGS84 ellipsoid (GeographicLib, through ``pyproj.Geod``). It does not
depend on a projection, so a polygon has the same area whichever scene CRS it was vectorized in. PostGIS computes
the same number with ``ST_Area(geom::geography)`` (spheroid, also GeographicLib): use :data:`SQL_AREA_HA` in SQL.
Edges are geodesics (PostGIS geography does the same); for polygons of a few km the difference to straight edges
in any projection is far below a pixel.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

M2_PER_HA = 10_000.0
GEOD = Geod(ellps="WGS84")
# the same area in PostGIS, for a geometry column or expression ``{geom}`` in EPSG:4326
SQL_AREA_HA = "(ST_Area(({geom})::geography) / 10000.0)"


def _ring_m2(ring: shapely.LinearRing) -> float:
    coords = shapely.get_coordinates(ring)
    if len(coords) < 4:
        return 0.0
    area, _ = GEOD.polygon_area_perimeter(coords[:, 0], coords[:, 1])
    return abs(float(area))


def area_m2(geom: BaseGeometry | None) -> float:
    """Geodesic area (m²) of the polygonal parts of ``geom`` (EPSG:4326, x = longitude); 0 for None/empty/lines.

    Ring orientation does not matter: each part is |exterior| minus its |holes|.
    """
    if geom is None or geom.is_empty:
        return 0.0
    total = 0.0
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            total += _ring_m2(part.exterior) - sum(_ring_m2(r) for r in part.interiors)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            total += area_m2(part)
    return total


def area_ha(geom: BaseGeometry | None) -> float:
    """Geodesic area in hectares of a geometry in EPSG:4326 (the AmberWatch definition of area)."""
    return area_m2(geom) / M2_PER_HA


def areas_ha(geoms: Iterable[BaseGeometry | None]) -> np.ndarray:
    """:func:`area_ha` of each geometry, as a float64 array."""
    return np.array([area_ha(g) for g in geoms], dtype=np.float64)


def sql_area_ha(geom_sql: str) -> str:
    """PostGIS expression of :func:`area_ha` for an EPSG:4326 geometry expression, e.g. ``sql_area_ha("s.geom")``."""
    return SQL_AREA_HA.format(geom=geom_sql)
