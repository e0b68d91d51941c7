"""Probability COG -> pit/pond polygons in EPSG:4326, block by block with bounded memory.

Rules (the decision rule itself is :mod:`amberwatch.detect.decision`, shared with model evaluation):
- a pixel is mining when P(pit) + P(pond) >= the rule's pixel threshold; its class is the larger of the two;
- objects are 8-connected groups of mining pixels; an object is kept when its mean mining probability reaches
  the rule's minimum object confidence, and that mean is the ``confidence`` of each of its polygons;
- one polygon per 4-connected region of one class. A pit touching a pond therefore gives two polygons, one per
  class, that share their pixel boundary and never overlap (every pixel has exactly one class); a pit is not
  absorbed into the pond or vice versa.
- the raster is processed in blocks; regions (and objects) touching an inner block edge are unioned across blocks
  (in exact pixel coordinates), so block borders never split a polygon or change an object's confidence.
- polygons are simplified by half a pixel (Douglas-Peucker, topology preserving); shared edges between
  neighbouring polygons may therefore move apart by up to half a pixel.
- area_ha is the geodesic area of the simplified polygon in EPSG:4326 (:func:`amberwatch.area.area_ha`, the one
  area definition of the service). Polygons below ``min_area_ha`` are dropped.
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
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import label

from amberwatch.area import areas_ha as geodesic_areas_ha
from amberwatch.detect.decision import EIGHT, DecisionRule, pixel_classes
from amberwatch.errors import InputError
from amberwatch.types import DetectedPolygon, DetectionClass

log = logging.getLogger(__name__)

CLASSES: tuple[DetectionClass, ...] = ("pit", "pond")  # band 1, band 2 of the probability COG
BLOCK_SIZE = 2048
CACHE_BYTES = 64 << 20  # blocks are read once each: no need for GDAL's default cache (5% of RAM)


@dataclass
class Region:
    """A connected one-class region in full-raster pixel coordinates with its mining-probability sum (x255).

    ``confidence`` is the mean mining probability of the region's object, once the object is complete.
    """

    cls: int  # 1 = pit, 2 = pond
    geometry: shapely.Geometry
    prob_sum: float
    pixels: int
    confidence: float | None = None


def block_regions(
    probs: np.ndarray, window: Window, shape: tuple[int, int], rule: DecisionRule, min_pixels: int = 0
) -> tuple[list[Region], list[Region]]:
    """Regions of one block: (of complete, kept objects; of objects touching an inner block edge).

    Regions of complete objects with fewer than ``min_pixels`` pixels are skipped before polygonizing (speed on
    noisy maps); regions of objects on an edge are all returned, their object is judged after merging.
    """
    cls, mining = pixel_classes(probs, rule.pixel_threshold)
    labels = label(cls, background=0, connectivity=1).astype(np.int32)
    n = int(labels.max())
    if n == 0:
        return [], []
    objects, n_obj = ndimage.label(cls > 0, structure=EIGHT)
    flat, flat_obj = labels.ravel(), objects.ravel()
    sums = np.bincount(flat, weights=mining.ravel(), minlength=n + 1)
    counts = np.bincount(flat, minlength=n + 1)
    label_cls = np.zeros(n + 1, np.uint8)
    label_cls[flat] = cls.ravel()
    region_obj = np.zeros(n + 1, np.int64)
    region_obj[flat] = flat_obj
    obj_sums = np.bincount(flat_obj, weights=mining.ravel(), minlength=n_obj + 1)
    obj_counts = np.bincount(flat_obj, minlength=n_obj + 1)
    height, width = shape
    edges = []
    if window.row_off > 0:
        edges.append(objects[0])
    if window.row_off + window.height < height:
        edges.append(objects[-1])
    if window.col_off > 0:
        edges.append(objects[:, 0])
    if window.col_off + window.width < width:
        edges.append(objects[:, -1])
    obj_on_edge = np.zeros(n_obj + 1, bool)
    if edges:
        obj_on_edge[np.unique(np.concatenate(edges))] = True
    obj_on_edge[0] = False
    obj_kept = obj_sums >= rule.min_object_confidence * 255.0 * obj_counts
    on_edge = obj_on_edge[region_obj]
    wanted = on_edge | (obj_kept[region_obj] & (counts >= max(min_pixels, 1)))
    wanted[0] = False
    complete, partial = [], []
    to_raster = Affine.translation(window.col_off, window.row_off)
    for geom, value in shapes(labels, mask=wanted[labels], connectivity=4, transform=to_raster):
        v = int(value)
        region = Region(int(label_cls[v]), shapely.geometry.shape(geom), float(sums[v]), int(counts[v]))
        if on_edge[v]:
            partial.append(region)
        else:
            o = region_obj[v]
            region.confidence = float(obj_sums[o] / obj_counts[o] / 255.0)
            complete.append(region)
    return complete, partial


def merge_partials(partials: list[Region], rule: DecisionRule) -> list[Region]:
    """Union regions cut by block edges (per class), regroup them into objects and apply the object rule."""
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
    if not merged:
        return []
    # objects = regions that touch (an edge or a corner: 8-connectivity of exact pixel polygons)
    geoms = np.array([r.geometry for r in merged], dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(merged), len(merged)))
    _, obj = connected_components(graph, directed=False)
    obj_sums = np.bincount(obj, weights=[r.prob_sum for r in merged])
    obj_counts = np.bincount(obj, weights=[r.pixels for r in merged])
    kept = []
    for r, o in zip(merged, obj, strict=True):
        if obj_sums[o] >= rule.min_object_confidence * 255.0 * obj_counts[o]:
            r.confidence = float(obj_sums[o] / obj_counts[o] / 255.0)
            kept.append(r)
    return kept


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
    rule: DecisionRule | None = None,
    *,
    min_area_ha: float,
    block_size: int = BLOCK_SIZE,
) -> list[DetectedPolygon]:
    """Polygons of pits and ponds from a probability COG (bands pit, pond; uint8 = probability x 255).

    ``scene_crs`` is used when the COG carries no CRS; ``rule`` defaults to ``DecisionRule()`` (0.5, 0.0).
    ``min_area_ha`` is the minimum mapping unit (settings.min_mapping_unit_ha in the service). Returned largest
    first, in EPSG:4326.
    """
    rule = rule or DecisionRule()
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
                done, cut = block_regions(src.read([1, 2], window=window), window, shape, rule, min_pixels)
                complete += done
                partial += cut
    regions = complete + merge_partials(partial, rule)
    polygons = regions_to_polygons(regions, crs, transform, min_area_ha)
    log.info(
        "vectorized %s: %d regions, %d kept (>= %.3f ha, %s)", prob_path, len(regions), len(polygons), min_area_ha, rule
    )
    return polygons


class StripVectorizer:
    """:func:`vectorize` fed window by window while the probabilities are computed (no re-read of the COG).

    Windows (uint8 [2, h, w], the bands of the probability COG) arrive in any order; each full-width strip of
    window rows is vectorized as one block as soon as it is complete, so only one strip per row band is held.
    :meth:`polygons` gives what :func:`vectorize` gives on the COG written from the same windows (blocks never change
    the result).
    """

    def __init__(self, width: int, height: int, transform: Affine, crs: str | CRS, rule: DecisionRule | None = None,
                 *, min_area_ha: float) -> None:
        self.width, self.height, self.transform = width, height, transform
        self.crs = CRS.from_user_input(crs)
        self.rule = rule or DecisionRule()
        self.min_area_ha = min_area_ha
        self.min_pixels = prefilter_pixels(self.crs, transform, min_area_ha)
        self.strips: dict[int, tuple[np.ndarray, int]] = {}  # row_off -> (strip, columns filled)
        self.complete: list[Region] = []
        self.partial: list[Region] = []

    def add(self, window: Window, probs: np.ndarray) -> None:
        """One window of the probability raster (bands pit, pond; uint8)."""
        row, h = int(window.row_off), int(window.height)
        strip, filled = self.strips.get(row, (None, 0))
        if strip is None:
            strip = np.zeros((2, h, self.width), np.uint8)
        col, w = int(window.col_off), int(window.width)
        strip[:, :, col : col + w] = probs[:2]
        filled += w
        if filled < self.width:
            self.strips[row] = (strip, filled)
            return
        self.strips.pop(row, None)
        block = Window(0, row, self.width, h)
        done, cut = block_regions(strip, block, (self.height, self.width), self.rule, self.min_pixels)
        self.complete += done
        self.partial += cut

    def polygons(self) -> list[DetectedPolygon]:
        if self.strips:
            raise ValueError(f"{len(self.strips)} strip(s) of windows are incomplete")
        regions = self.complete + merge_partials(self.partial, self.rule)
        polygons = regions_to_polygons(regions, self.crs, self.transform, self.min_area_ha)
        log.info("vectorized while segmenting: %d regions, %d kept (>= %.3f ha, %s)", len(regions), len(polygons),
                 self.min_area_ha, self.rule)
        return polygons


def regions_to_polygons(
    regions: list[Region], crs: CRS, transform: Affine, min_area_ha: float
) -> list[DetectedPolygon]:
    """Finished regions (pixel coordinates) -> polygons in EPSG:4326 of at least ``min_area_ha``, largest first.

    Shared by :func:`vectorize` and the Dask path (:mod:`amberwatch.detect.scaleout`), which builds the regions
    tile by tile on the workers with :func:`block_regions` and merges them with :func:`merge_partials`.
    """
    if not regions:
        return []
    # One outline per region, however the blocks cut it: rings start at their lowest corner (normalize) and lose
    # their collinear vertices (the seams of merged pieces; exact in pixel units), because Douglas-Peucker keeps
    # a ring's first vertex and so depends on where the ring starts.
    geoms = shapely.normalize(np.array([r.geometry for r in regions], dtype=object))
    geoms = shapely.simplify(geoms, 0.0, preserve_topology=False)
    # pixel -> scene CRS; simplify by half a pixel first, in exact pixel units
    geoms = shapely.simplify(geoms, 0.5, preserve_topology=True)
    t = transform
    geoms = shapely.transform(
        geoms,
        lambda xy: np.column_stack((t.a * xy[:, 0] + t.b * xy[:, 1] + t.c, t.d * xy[:, 0] + t.e * xy[:, 1] + t.f)),
    )
    wgs84 = reproject(geoms, Transformer.from_crs(crs, "EPSG:4326", always_xy=True))
    areas_ha = geodesic_areas_ha(wgs84)
    keep = areas_ha >= min_area_ha
    polygons = [
        DetectedPolygon(geometry=g, cls=CLASSES[r.cls - 1], area_ha=float(a), confidence=float(r.confidence or 0.0))
        for g, r, a, k in zip(wgs84, regions, areas_ha, keep, strict=True)
        if k
    ]
    polygons.sort(key=lambda p: -p.area_ha)
    return polygons
