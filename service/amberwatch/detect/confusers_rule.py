"""Context rule against natural sand in water (river sandbars, lake-shore sand): a post-filter on detected objects.

A Sentinel-2 model sees a sandbar as it sees a mining pit: bright sand next to water. What differs is the context.
An object is dropped as *natural sand in water* when all three hold:

1. it is sand, not a site with ponds: at most ``max_pond_share`` of its pixels are of class pond;
2. it is elongated: the ratio of the axes of its pixel cloud (sqrt of the covariance eigenvalues) is at least
   ``min_elongation`` (bars lie along the current);
3. it lies along a large natural water body: at least ``min_ring_water`` of its ``ring_px`` outer ring is water
   (NDWI green/NIR > ``ndwi_water``) of a water body of at least ``min_water_ha`` within ``context_px`` of the
   object (mining ponds are part of their object and small, lakes and rivers are not).

The numbers belong to a model: they were chosen on the validation split of the confuser set (never its test split)
and are stored in the model card as ``amberwatch:context_rule``; a card without it gets no post-filter. One
implementation for both sides: :func:`filter_class_map` on an in-memory class map (evaluation) and
:func:`filter_polygons` on the polygons of a run (the service: :func:`apply_to_result`, called once by the run use
case for both executors), both through :func:`shaped_like_sand_bar` and :func:`along_large_water`
(:func:`is_natural_sand`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from rasterio.windows import Window
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from amberwatch.detect.registry import ModelInfo
from amberwatch.detect.segment import band_indexes, scene_band_names
from amberwatch.errors import InputError
from amberwatch.types import REFLECTANCE_SCALE, DetectedPolygon, DetectionResult, IngestedScene

log = logging.getLogger(__name__)

CARD_KEY = "amberwatch:context_rule"
EIGHT = np.ones((3, 3), bool)
CLASS_CODE = {"pit": 1, "pond": 2}


@dataclass(frozen=True)
class ContextRule:
    """Thresholds of the natural-sand post-filter (see the module docstring)."""

    max_pond_share: float = 0.15
    min_elongation: float = 1.5
    min_ring_water: float = 0.2
    min_water_ha: float = 10.0
    ring_px: int = 2
    context_px: int = 48
    ndwi_water: float = 0.1

    def __post_init__(self) -> None:
        for name in ("max_pond_share", "min_ring_water"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"context rule {name} must be in [0, 1], got {getattr(self, name)}")
        if self.ring_px < 1 or self.context_px < self.ring_px or self.min_water_ha <= 0 or self.min_elongation < 1:
            raise InputError(f"context rule out of range: {self}")

    @classmethod
    def from_card(cls, properties: dict[str, Any]) -> ContextRule | None:
        """The rule stored in a model card's properties (``amberwatch:context_rule``), else None (no filter)."""
        d = properties.get(CARD_KEY)
        if not d:
            return None
        fields = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in d.items() if k in fields})

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def water_mask(green: np.ndarray, nir: np.ndarray, threshold: float) -> np.ndarray:
    """NDWI (green - NIR) / (green + NIR) > ``threshold`` (reflectance; nodata 0 is never water)."""
    g, n = green.astype(np.float32), nir.astype(np.float32)
    return (g - n) / (g + n + 1e-6) > threshold


def elongation(obj: np.ndarray) -> float:
    """Axis ratio of an object's pixel cloud: sqrt of the ratio of the eigenvalues of its coordinate covariance."""
    yy, xx = np.nonzero(obj)
    if len(yy) < 3:
        return 1.0
    ev = np.sort(np.linalg.eigvalsh(np.cov(np.stack([yy, xx]).astype(float))))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-3)))


def ring_water_share(obj: np.ndarray, water: np.ndarray, rule: ContextRule, pixel_ha: float) -> float:
    """Share of the object's ``rule.ring_px`` outer ring that is water of a body >= ``rule.min_water_ha``
    (4-connected bodies of ``water`` within the window)."""
    ring = ndimage.binary_dilation(obj, EIGHT, iterations=rule.ring_px) & ~obj
    if not ring.any():
        return 0.0
    bodies, n = ndimage.label(water)
    big = np.bincount(bodies.ravel(), minlength=n + 1) * pixel_ha >= rule.min_water_ha
    big[0] = False
    return float(big[bodies[ring]].mean())


def shaped_like_sand_bar(obj_cls: np.ndarray, rule: ContextRule) -> bool:
    """Tests 1 and 2 of the rule, which need no image: sand (few pond pixels) and elongated."""
    obj = obj_cls > 0
    if not obj.any() or (obj_cls[obj] == 2).mean() > rule.max_pond_share:
        return False
    return elongation(obj) >= rule.min_elongation


def along_large_water(obj: np.ndarray, water: np.ndarray, rule: ContextRule, pixel_ha: float) -> bool:
    """Test 3 of the rule: enough of the object's outer ring is water of a large body."""
    return ring_water_share(obj, water, rule, pixel_ha) >= rule.min_ring_water


def is_natural_sand(obj_cls: np.ndarray, water: np.ndarray, rule: ContextRule, pixel_ha: float) -> bool:
    """The rule on one object: ``obj_cls`` (0 outside the object, 1 pit, 2 pond) and ``water``
    (:func:`water_mask`) cover the object's bounding box plus ``rule.context_px`` on every side (clipped to the
    raster). Cheapest tests first."""
    return shaped_like_sand_bar(obj_cls, rule) and along_large_water(obj_cls > 0, water, rule, pixel_ha)


def context_window(rows: slice, cols: slice, shape: tuple[int, int], context_px: int) -> tuple[slice, slice]:
    """An object's bounding box plus ``context_px`` on every side, clipped to a raster of ``shape``."""
    return (slice(max(0, rows.start - context_px), min(shape[0], rows.stop + context_px)),
            slice(max(0, cols.start - context_px), min(shape[1], cols.stop + context_px)))


def filter_class_map(cls: np.ndarray, water: np.ndarray, rule: ContextRule, pixel_ha: float = 0.01) -> np.ndarray:
    """A class map (0/1/2, e.g. ``decision.object_class_map``) without its natural-sand objects (8-connected);
    ``water``: :func:`water_mask` of the same pixels."""
    comps, _ = ndimage.label(cls > 0, structure=EIGHT)
    out = cls.copy()
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        win = context_window(sl[0], sl[1], cls.shape, rule.context_px)
        obj = comps[win] == i
        if is_natural_sand(np.where(obj, cls[win], 0), water[win], rule, pixel_ha):
            out[win][obj] = 0
    return out


def group_objects(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Object id of each polygon: polygons closer than ``tolerance`` (a pit and its pond) are one object."""
    left, right = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=tolerance)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(geoms), len(geoms)))
    return connected_components(graph, directed=False)[1]


class WaterBlocks:
    """The NDWI water mask of a reflectance raster, computed block by block as windows ask for it: each block of
    the raster is decoded once (a pixel-interleaved 13-band COG block costs ~2 ms to decode; reading every
    object's window directly decoded the same blocks again and again)."""

    def __init__(self, src: rasterio.io.DatasetReader, green_band: int, nir_band: int, threshold: float) -> None:
        self.src, self.bands, self.threshold = src, [green_band, nir_band], threshold
        self.block_h, self.block_w = src.block_shapes[green_band - 1]
        self._blocks: dict[tuple[int, int], np.ndarray] = {}

    def _block(self, by: int, bx: int) -> np.ndarray:
        h = min(self.block_h, self.src.height - by * self.block_h)
        w = min(self.block_w, self.src.width - bx * self.block_w)
        packed = self._blocks.get((by, bx))
        if packed is None:  # kept as bits: a whole tile's mask is ~15 MB
            green, nir = self.src.read(self.bands, window=Window(bx * self.block_w, by * self.block_h, w, h))
            mask = water_mask(green * np.float32(REFLECTANCE_SCALE), nir * np.float32(REFLECTANCE_SCALE),
                              self.threshold)
            packed = self._blocks[(by, bx)] = np.packbits(mask, axis=None)
        return np.unpackbits(packed, count=h * w).reshape(h, w).astype(bool)

    def window(self, rows: slice, cols: slice) -> np.ndarray:
        """The water mask of ``rows`` x ``cols`` (inside the raster)."""
        out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
        for by in range(rows.start // self.block_h, (rows.stop - 1) // self.block_h + 1):
            for bx in range(cols.start // self.block_w, (cols.stop - 1) // self.block_w + 1):
                y0, x0 = by * self.block_h, bx * self.block_w
                block = self._block(by, bx)
                r0, r1 = max(rows.start, y0), min(rows.stop, y0 + block.shape[0])
                c0, c1 = max(cols.start, x0), min(cols.stop, x0 + block.shape[1])
                out[r0 - rows.start:r1 - rows.start, c0 - cols.start:c1 - cols.start] = block[r0 - y0:r1 - y0,
                                                                                              c0 - x0:c1 - x0]
        return out


def filter_polygons(polygons: list[DetectedPolygon], reflectance_path: Path, green_band: int, nir_band: int,
                    rule: ContextRule) -> list[DetectedPolygon]:
    """The polygons of a run without its natural-sand objects; bands are read only around candidate objects.

    ``green_band`` / ``nir_band``: 1-based band indexes in the reflectance raster (integers x REFLECTANCE_SCALE).
    """
    if not polygons:
        return polygons
    with rasterio.open(reflectance_path) as src:
        if src.crs is None:
            log.warning("context rule skipped: %s has no CRS", reflectance_path)
            return polygons
        to_px = ~src.transform
        crs = CRS.from_user_input(src.crs.to_wkt())
        pixel_ha = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d) / 10_000
        fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

        def pixel_coords(xy: np.ndarray) -> np.ndarray:
            x, y = fwd.transform(xy[:, 0], xy[:, 1])
            col, row = to_px * (np.asarray(x), np.asarray(y))
            return np.column_stack([col, row])

        geoms = shapely.transform(np.array([p.geometry for p in polygons], dtype=object), pixel_coords)
        areas = shapely.area(geoms)
        pond_areas = np.where([p.cls == "pond" for p in polygons], areas, 0.0)
        objects = group_objects(geoms, 1.0)
        drop = np.zeros(len(polygons), bool)
        by_object = np.argsort(objects, kind="stable")
        water = WaterBlocks(src, green_band, nir_band, rule.ndwi_water)
        for members in np.split(by_object, np.flatnonzero(np.diff(objects[by_object])) + 1):
            if pond_areas[members].sum() > rule.max_pond_share * areas[members].sum():
                continue  # a site with ponds: no need to read pixels
            c0, r0, c1, r1 = shapely.total_bounds(geoms[members])
            rows, cols = slice(int(np.floor(r0)), int(np.ceil(r1))), slice(int(np.floor(c0)), int(np.ceil(c1)))
            wr, wc = context_window(rows, cols, (src.height, src.width), rule.context_px)
            if wr.stop <= wr.start or wc.stop <= wc.start:
                continue
            origin = np.array([wc.start, wr.start], float)
            local = [shapely.transform(geoms[i], lambda xy, o=origin: xy - o) for i in members]
            obj_cls = rasterize([(g, CLASS_CODE[polygons[i].cls]) for g, i in zip(local, members, strict=True)],
                                out_shape=(wr.stop - wr.start, wc.stop - wc.start), fill=0, dtype="uint8")
            # round or pond-rich: no pixels are read
            if shaped_like_sand_bar(obj_cls, rule) and along_large_water(obj_cls > 0, water.window(wr, wc), rule,
                                                                         pixel_ha):
                drop[members] = True
    if drop.any():
        log.info("context rule: dropped %d of %d polygons as natural sand in water (%s)", int(drop.sum()),
                 len(polygons), rule)
    return [p for p, d in zip(polygons, drop, strict=True) if not d]


def apply_to_result(result: DetectionResult, scene: IngestedScene, model: ModelInfo) -> DetectionResult:
    """The run's result without natural-sand objects when the model card has a context rule (else unchanged);
    the rule and the number of polygons it dropped go into the result's parameters."""
    rule = ContextRule.from_card(model.properties)
    if rule is None:
        return result
    with rasterio.open(scene.reflectance_path) as src:
        names = scene_band_names(src.descriptions, scene)
    green, nir = band_indexes(names, ["green", "nir"], model.ref, scene.scene_key)
    kept = filter_polygons(result.polygons, scene.reflectance_path, green, nir, rule)
    parameters = {**result.parameters, "context_rule": rule.as_dict(),
                  "context_rule_dropped": len(result.polygons) - len(kept)}
    return replace(result, polygons=kept, parameters=parameters)
