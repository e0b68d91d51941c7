"""Clear-sky footprint of a scene: the pixels its cloud mask marks clear (0), as one geometry in EPSG:4326.

Computed once per run in the detect stage and carried on ``DetectionResult.clear_sky``, so that site tracking
(``track.update_sites``) knows which places a scene really observed without opening rasters. Pixels outside the
mask raster count as not observed (as the cloud mask's own nodata/invalid class does).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.features import shapes
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)


def clear_sky_footprint(cloud_mask_path: Path | str | None) -> BaseGeometry | None:
    """Union of the clear (value 0) pixels of a uint8 cloud mask (1 = cloud/shadow/invalid) in EPSG:4326.

    None when there is no mask (``cloud_mask_path`` None) or the file is missing: the scene then counts as clear
    everywhere in its footprint (logged). An all-cloudy mask gives an empty MultiPolygon.
    """
    if not cloud_mask_path:
        return None
    path = Path(cloud_mask_path)
    if not path.exists():
        log.warning("cloud mask %s is missing: the scene counts as clear everywhere", path)
        return None
    with rasterio.open(path) as ds:
        data = ds.read(1)
        transform, crs = ds.transform, CRS.from_user_input(ds.crs)
    clear = data == 0
    if not clear.any():
        return MultiPolygon()
    polys = [shapely.geometry.shape(g) for g, _ in shapes(clear.view(np.uint8), mask=clear, transform=transform)]
    geoms = np.asarray(polys, dtype=object)
    if not crs.equals(CRS.from_epsg(4326)):
        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    parts: list[Polygon] = []
    for g in shapely.get_parts(shapely.make_valid(geoms)):
        if isinstance(g, Polygon):
            parts.append(g)
        elif isinstance(g, MultiPolygon):
            parts.extend(g.geoms)
    footprint = MultiPolygon(parts)
    log.info("clear-sky footprint of %s: %d polygon(s), %.1f %% of the pixels clear", path, len(parts),
             100.0 * float(clear.mean()))
    return footprint
