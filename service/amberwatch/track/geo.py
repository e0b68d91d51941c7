"""Geometry helpers: WGS84 <-> equal-area metric CRS, multipolygons, WKB."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

METRIC_SRID = 3035  # ETRS89 / LAEA Europe: equal-area, metric; covers Ukraine
M2_PER_HA = 10_000.0


@lru_cache
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def reproject(geom: BaseGeometry, src: int, dst: int) -> BaseGeometry:
    tr = _transformer(src, dst)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fn)


def to_metric(geom: BaseGeometry) -> BaseGeometry:
    return reproject(geom, 4326, METRIC_SRID)


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    return reproject(geom, METRIC_SRID, 4326)


def multi(geom: BaseGeometry | None) -> MultiPolygon:
    """The polygonal part of ``geom`` as a valid MultiPolygon (possibly empty)."""
    if geom is None or geom.is_empty:
        return MultiPolygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
    return MultiPolygon(polys)


def area_ha(geom: BaseGeometry | None) -> float:
    """Area in hectares of a geometry already in the metric equal-area CRS."""
    return 0.0 if geom is None or geom.is_empty else float(geom.area) / M2_PER_HA
