"""One Sentinel-1 pair end to end: Lee filter, per-scene water thresholds, water masks, change map, and the change
as EPSG:4326 polygons (what tracking stores: ``store.queries.sar``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.features import shapes
from shapely.geometry import MultiPolygon, box, shape
from shapely.geometry.base import BaseGeometry

from amberwatch.errors import InputError
from amberwatch.ingest.plan import Grid
from amberwatch.ingest.rasters import same_grid
from amberwatch.ingest.sentinel1 import S1Scene
from amberwatch.sar.change import CHANGE_CLASSES, ChangeMap, change_map
from amberwatch.sar.water import WaterModel, filtered_db, learn_thresholds, water_mask


@dataclass
class PairResult:
    change: ChangeMap
    polygons: list[tuple[str, MultiPolygon]]  # (change class, EPSG:4326) for every changed class present
    footprint: MultiPolygon  # the pair's grid, EPSG:4326


def compare_scenes(before: S1Scene, after: S1Scene, model: WaterModel) -> PairResult:
    """Change between two Sentinel-1 scenes on one grid (thresholds learned on each scene separately)."""
    if not same_grid(before.grid, after.grid):
        raise InputError(f"{before.scene_key} and {after.scene_key} are not on one grid: give two dates of the same "
                         "burst, tile or crop")
    if after.acquired <= before.acquired:
        raise InputError(f"{after.scene_key} is not later than {before.scene_key}")
    db = [filtered_db(before), filtered_db(after)]
    water = [water_mask(model.probability(d, learn_thresholds([d]))) for d in db]
    change = change_map(db[0], db[1], water[0], water[1])
    return PairResult(change, change_polygons(change, after.grid), footprint_wgs84(after.grid))


def _to_wgs84(grid: Grid) -> Callable[[BaseGeometry], BaseGeometry]:
    project = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform
    return lambda geom: shapely.transform(geom, project, interleaved=False)


def change_polygons(change: ChangeMap, grid: Grid) -> list[tuple[str, MultiPolygon]]:
    """The changed classes of ``change`` as one EPSG:4326 multipolygon each (pixel edges, no smoothing)."""
    to_wgs84 = _to_wgs84(grid)
    out: list[tuple[str, MultiPolygon]] = []
    for value, name in enumerate(CHANGE_CLASSES[1:], start=1):  # 0: stable
        mask = change.classes == value
        if not mask.any():
            continue
        parts = [shape(geom) for geom, _ in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform)]
        merged = to_wgs84(shapely.union_all(parts))
        out.append((name, MultiPolygon([p for p in shapely.get_parts(merged) if p.geom_type == "Polygon"])))
    return out


def footprint_wgs84(grid: Grid) -> MultiPolygon:
    return MultiPolygon([_to_wgs84(grid)(box(*grid.bounds))])
