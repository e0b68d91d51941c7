"""Probability COG -> pit/pond polygons in EPSG:4326, block by block with bounded memory.

Rules:
- class map: per pixel the class (pit or pond) with the higher probability, kept when that probability is
  >= ``threshold``; everything else is background.
- one polygon per 4-connected region of one class. A pit touching a pond therefore gives two polygons, one per
  class, that share their pixel boundary and never overlap (every pixel has exactly one class); a pit is not
  absorbed into the pond or vice versa.
- the raster is processed in blocks; regions touching an inner block edge are unioned across blocks (in exact
  pixel coordinates), so block borders never split a polygon.
- polygons are simplified by half a pixel (Douglas-Peucker, topology preserving); shared edges between
  neighbouring polygons may therefore move apart by up to half a pixel.
- area_ha is the area of the simplified polygon in a metric CRS: the scene's CRS when it is UTM or equal-area,
  else a Lambert azimuthal equal-area projection centred on the raster. Polygons below ``min_area_ha`` are dropped.
- confidence is the mean probability of the polygon's class over its pixels (before simplification).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import shapes
from rasterio.windows import Window
from skimage.measure import label

from amberwatch.errors import InputError
from amberwatch.settings import get_settings
from amberwatch.types import DetectedPolygon, DetectionClass

log = logging.getLogger(__name__)

CLASSES: tuple[DetectionClass, ...] = ("pit", "pond")  # band 1, band 2 of the probability COG
BLOCK_SIZE = 2048
CACHE_BYTES = 64 << 20  # blocks are read once each: no need for GDAL's default cache (5% of RAM)
EQUAL_AREA_METHODS = ("lambert azimuthal equal area", "albers equal area", "lambert cylindrical equal area")


@dataclass
class Region:
    """A connected region in full-raster pixel coordinates with its probability sum (0..255 units)."""

    cls: int  # 1 = pit, 2 = pond
    geometry: shapely.Geometry
    prob_sum: float
    pixels: int


def class_map(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [2, h, w] probabilities -> (class 0/1/2, probability of the chosen class)."""
    best = np.argmax(probs, axis=0)
    chosen = np.where(best == 0, probs[0], probs[1])
    cls = np.where(chosen >= threshold * 255.0, best + 1, 0).astype(np.uint8)
    return cls, chosen


def block_regions(
    probs: np.ndarray, window: Window, shape: tuple[int, int], threshold: float, min_pixels: int = 0
) -> tuple[list[Region], list[Region]]:
    """Regions of one block: (complete, touching an inner block edge).

    Complete regions of fewer than ``min_pixels`` pixels are skipped before polygonizing (speed on noisy maps).
    """
    cls, chosen = class_map(probs, threshold)
    labels = label(cls, background=0, connectivity=1).astype(np.int32)
    n = int(labels.max())
    if n == 0:
        return [], []
    flat = labels.ravel()
    sums = np.bincount(flat, weights=chosen.ravel().astype(np.float64), minlength=n + 1)
    counts = np.bincount(flat, minlength=n + 1)
    label_cls = np.zeros(n + 1, np.uint8)
    label_cls[flat] = cls.ravel()
    height, width = shape
    edges = []
    if window.row_off > 0:
        edges.append(labels[0])
    if window.row_off + window.height < height:
        edges.append(labels[-1])
    if window.col_off > 0:
        edges.append(labels[:, 0])
    if window.col_off + window.width < width:
        edges.append(labels[:, -1])
    on_edge = set(np.unique(np.concatenate(edges)).tolist()) if edges else set()
    complete, partial = [], []
    to_raster = Affine.translation(window.col_off, window.row_off)
    wanted = counts >= max(min_pixels, 1)
    wanted[0] = False
    if on_edge:
        wanted[list(on_edge)] = True
        wanted[0] = False
    for geom, value in shapes(labels, mask=wanted[labels], connectivity=4, transform=to_raster):
        v = int(value)
        region = Region(int(label_cls[v]), shapely.geometry.shape(geom), float(sums[v]), int(counts[v]))
        (partial if v in on_edge else complete).append(region)
    return complete, partial


def merge_partials(partials: list[Region]) -> list[Region]:
    """Union regions cut by block edges, per class, summing their probability statistics."""
    merged: list[Region] = []
    for c in (1, 2):
        pieces = [r for r in partials if r.cls == c]
        if not pieces:
            continue
        parts = shapely.get_parts(shapely.union_all([r.geometry for r in pieces]))
        tree = shapely.STRtree(parts)
        points = shapely.point_on_surface([r.geometry for r in pieces])
        piece_idx, part_idx = tree.query(points, predicate="within")
        sums, counts = np.zeros(len(parts)), np.zeros(len(parts), np.int64)
        np.add.at(sums, part_idx, [pieces[i].prob_sum for i in piece_idx])
        np.add.at(counts, part_idx, [pieces[i].pixels for i in piece_idx])
        merged += [Region(c, g, float(s), int(n)) for g, s, n in zip(parts, sums, counts, strict=True)]
    return merged


def area_crs(crs: CRS, center_lonlat: tuple[float, float]) -> CRS:
    """The CRS areas are measured in: the raster's own if UTM / equal-area in metres, else a local LAEA."""
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_conversion_factor == 1.0:
        method = (crs.coordinate_operation.method_name or "").lower() if crs.coordinate_operation else ""
        if crs.utm_zone or method in EQUAL_AREA_METHODS:
            return crs
    lon, lat = center_lonlat
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m")


def prefilter_pixels(crs: CRS, transform: Affine, min_area_ha: float) -> int:
    """Pixel count below which a region cannot reach ``min_area_ha`` even after simplification (0 = unknown)."""
    if not (crs.is_projected and crs.axis_info and crs.axis_info[0].unit_conversion_factor == 1.0):
        return 0
    pixel_m2 = abs(transform.a * transform.e - transform.b * transform.d)
    return int(0.5 * min_area_ha * 10_000 / pixel_m2)  # half: simplification moves the outline by <= 1/2 px


def reproject(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def vectorize(
    prob_path: Path,
    scene_crs: str | CRS | None = None,
    threshold: float = 0.5,
    min_area_ha: float | None = None,
    block_size: int = BLOCK_SIZE,
) -> list[DetectedPolygon]:
    """Polygons of pits and ponds from a probability COG (bands pit, pond; uint8 = probability x 255).

    ``scene_crs`` is used when the COG carries no CRS. ``min_area_ha`` defaults to settings.min_mapping_unit_ha.
    Returned largest first, in EPSG:4326.
    """
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold}")
    if min_area_ha is None:
        min_area_ha = get_settings().min_mapping_unit_ha
    complete: list[Region] = []
    partial: list[Region] = []
    with rasterio.Env(GDAL_CACHEMAX=CACHE_BYTES), rasterio.open(prob_path) as src:
        if src.count < 2:
            raise InputError(f"{prob_path} has {src.count} band(s); expected bands pit, pond")
        crs = CRS.from_user_input(src.crs.to_wkt() if src.crs else scene_crs)
        transform, shape = src.transform, src.shape
        min_pixels = prefilter_pixels(crs, transform, min_area_ha)
        for row in range(0, src.height, block_size):
            for col in range(0, src.width, block_size):
                window = Window(col, row, min(block_size, src.width - col), min(block_size, src.height - row))
                done, cut = block_regions(src.read([1, 2], window=window), window, shape, threshold, min_pixels)
                complete += done
                partial += cut
        bounds = src.bounds
    regions = complete + merge_partials(partial)
    if not regions:
        return []
    # pixel -> scene CRS; simplify by half a pixel first, in exact pixel units
    geoms = shapely.simplify(np.array([r.geometry for r in regions], dtype=object), 0.5, preserve_topology=True)
    t = transform
    geoms = shapely.transform(
        geoms,
        lambda xy: np.column_stack((t.a * xy[:, 0] + t.b * xy[:, 1] + t.c, t.d * xy[:, 0] + t.e * xy[:, 1] + t.f)),
    )
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    center = to_wgs84.transform((bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2)
    metric = area_crs(crs, center)
    metric_geoms = geoms if metric == crs else reproject(geoms, Transformer.from_crs(crs, metric, always_xy=True))
    areas_ha = shapely.area(metric_geoms) / 10_000.0
    keep = areas_ha >= min_area_ha
    wgs84 = reproject(geoms[keep], to_wgs84)
    kept = [r for r, k in zip(regions, keep, strict=True) if k]
    polygons = [
        DetectedPolygon(geometry=g, cls=CLASSES[r.cls - 1], area_ha=float(a), confidence=r.prob_sum / r.pixels / 255.0)
        for g, r, a in zip(wgs84, kept, areas_ha[keep], strict=True)
    ]
    log.info(
        "vectorized %s: %d regions, %d kept (>= %.3f ha, threshold %.2f)",
        prob_path,
        len(regions),
        len(polygons),
        min_area_ha,
        threshold,
    )
    polygons.sort(key=lambda p: -p.area_ha)
    return polygons
