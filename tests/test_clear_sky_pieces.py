"""A run's clear sky is stored cut into small pieces (track.geo.cut_into_pieces): the same area, valid pieces of at
most the asked number of vertices, as PostGIS' ST_Subdivide would give (tracking reads them by their index)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from amberwatch.track.geo import cut_into_pieces


def _cloud_holed_sky() -> MultiPolygon:
    """A clear sky like a cloud mask's: one large polygon with hundreds of cloud holes, and small clear islands."""
    rng = np.random.default_rng(7)
    holes = []
    for x, y in rng.uniform(0.02, 0.98, size=(400, 2)):
        r = rng.uniform(0.002, 0.008)
        holes.append(shapely.Point(x, y).buffer(r, quad_segs=4))
    holes_union = shapely.union_all(holes)
    sky = shapely.box(0, 0, 1, 1).difference(holes_union)
    islands = [shapely.box(x, y, x + 0.003, y + 0.003) for x, y in rng.uniform(1.1, 1.5, size=(20, 2))]
    parts = [p for p in shapely.get_parts(sky) if isinstance(p, Polygon)] + islands
    return MultiPolygon(parts)


def test_pieces_keep_the_area_and_are_small_and_valid() -> None:
    sky = _cloud_holed_sky()
    assert shapely.get_num_coordinates(sky) > 5000
    pieces = cut_into_pieces(sky, 256)
    assert len(pieces) > 20
    assert all(p.is_valid and not p.is_empty and isinstance(p, Polygon) for p in pieces)
    assert max(shapely.get_num_coordinates(np.asarray(pieces, dtype=object))) <= 256
    assert abs(sum(p.area for p in pieces) - sky.area) < 1e-9 * sky.area
    assert shapely.union_all(pieces).symmetric_difference(sky).area < 1e-9  # no gap, no overlap counted twice


def test_small_or_empty_skies() -> None:
    square = shapely.box(0, 0, 1, 1)
    assert [p.equals(square) for p in cut_into_pieces(square, 256)] == [True]
    assert cut_into_pieces(MultiPolygon(), 256) == []
