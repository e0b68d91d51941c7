"""Valid-data footprint of a scene in EPSG:4326, from a decimated valid-pixel mask."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio import features
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from amberwatch.ingest.plan import Grid


def footprint_wgs84(grid: Grid, valid: NDArray[np.bool_], step: int) -> BaseGeometry:
    """Polygon(s) around valid pixels (to within ``step`` pixels), densified and reprojected to lon/lat."""
    if valid.all():
        geom: BaseGeometry = box(*grid.bounds)
    else:
        transform = grid.transform @ Affine.scale(step)
        parts = [shape(g) for g, v in features.shapes(valid.astype(np.uint8), mask=valid, transform=transform) if v]
        geom = shapely.union_all(parts).simplify(abs(grid.transform.a) * step, preserve_topology=True)
    geom = shapely.segmentize(geom, max_segment_length=max(abs(grid.transform.a) * 64, _span(geom) / 32))
    to_ll = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))


def _span(geom: BaseGeometry) -> float:
    minx, miny, maxx, maxy = geom.bounds
    return max(maxx - minx, maxy - miny, 1e-9)
