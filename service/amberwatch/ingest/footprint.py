"""Valid-data footprint of a scene in EPSG:4326, from a decimated valid-pixel mask."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio import features
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from amberwatch.errors import InputError
from amberwatch.ingest.plan import Grid


def footprint_wgs84(grid: Grid, valid: NDArray[np.bool_], step: int) -> Polygon | MultiPolygon:
    """Polygon(s) around valid pixels (to within ``step`` pixels), densified and reprojected to lon/lat.

    Always a valid Polygon (one part) or MultiPolygon (several separate parts): simplification can make parts
    overlap or rings self-touch, so the result is repaired and only its polygonal parts are kept."""
    if valid.all() or not valid.any():  # no valid sample at this decimation: fall back to the grid's box
        geom: BaseGeometry = box(*grid.bounds)
    else:
        transform = grid.transform @ Affine.scale(step)
        parts = [shape(g) for g, v in features.shapes(valid.astype(np.uint8), mask=valid, transform=transform) if v]
        geom = shapely.union_all(parts).simplify(abs(grid.transform.a) * step, preserve_topology=True)
        geom = polygonal(geom) if not geom.is_empty else box(*grid.bounds)
    geom = shapely.segmentize(geom, max_segment_length=max(abs(grid.transform.a) * 64, _span(geom) / 32))
    to_ll = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    return polygonal(shapely.transform(geom, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1]))))


def polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """A valid Polygon or MultiPolygon from ``geom`` (repaired; points/lines left by the repair are dropped)."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    polys = _polygons(geom)
    if not polys:
        raise InputError("the input's valid pixels form no area (no footprint)")
    parts = _polygons(shapely.union_all(polys)) if len(polys) > 1 else polys
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    return [p for part in getattr(geom, "geoms", []) for p in _polygons(part)]


def _span(geom: BaseGeometry) -> float:
    minx, miny, maxx, maxy = geom.bounds
    return max(maxx - minx, maxy - miny, 1e-9)
