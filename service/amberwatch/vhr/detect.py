"""Texty's tile rule on a georeferenced RGB scene: SLIC superpixels per tile, a classifier per superpixel, a
tile is flagged when more than ``flag_count`` superpixels are positive; the positive superpixels of flagged tiles
become "pit" polygons.

Rules:
- tiles are ``tile_m`` metres square (Texty: ~1000 px at 0.37 m = 370 m) on the scene's pixel grid; each tile is
  read on its own (windowed read, resampled to the classifier's chip resolution 0.37 m/px), so memory is bounded
  by one tile whatever the scene size;
- pixels outside the dataset mask are excluded from SLIC; superpixels with less than half their pixels valid are
  not scored;
- polygons: the union of positive superpixels of all flagged tiles (superpixels touching across a tile border
  merge), one polygon per connected part; ``confidence`` is the area-weighted mean probability of its superpixels;
  ``area_ha`` is the geodesic area in EPSG:4326 (:func:`amberwatch.area.area_ha`); parts smaller than
  ``settings.min_mapping_unit_ha`` are dropped; geometry is returned in EPSG:4326.
- the result carries the scene's clear-sky footprint (its cloud mask, when it has one) for site tracking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.features import shapes
from rasterio.windows import Window

from amberwatch.area import area_ha as geodesic_area_ha
from amberwatch.detect.clearsky import clear_sky_footprint
from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.types import DetectedPolygon, DetectionResult, IngestedScene
from amberwatch.vhr.model import load_vhr_model
from amberwatch.vhr.preprocess import CHIP_GSD
from amberwatch.vhr.superpixels import COMPACTNESS, N_SEGMENTS, TILE_PX, tile_superpixels

log = logging.getLogger(__name__)

TILE_M = TILE_PX * CHIP_GSD  # 370 m
FLAG_COUNT = 2  # Texty: a tile is flagged when MORE than 2 superpixels are positive
MIN_VALID = 0.5


def _metres_per_pixel(src: rasterio.io.DatasetReader) -> float:
    res = abs(src.transform.a)
    crs = CRS.from_user_input(src.crs) if src.crs else None
    if crs is None:
        raise InputError(f"{src.name}: the raster has no CRS; a georeferenced GeoTIFF is needed")
    if crs.is_geographic:
        lat = (src.bounds.top + src.bounds.bottom) / 2
        return res * 111_320.0 * math.cos(math.radians(lat))
    return res * crs.axis_info[0].unit_conversion_factor


def _rgb_indexes(scene: IngestedScene, count: int) -> list[int]:
    names = [b.lower() for b in (scene.bands or [])]
    if all(c in names for c in ("red", "green", "blue")):
        return [names.index(c) + 1 for c in ("red", "green", "blue")]
    if count < 3:
        raise InputError(f"{scene.reflectance_path}: {count} band(s); an RGB image (3 bands) is needed")
    return [1, 2, 3]


def detect_vhr(
    scene: IngestedScene,
    model_dir: Path,
    settings: Settings,
    *,
    flag_count: int = FLAG_COUNT,
    tile_m: float = TILE_M,
    n_segments: int = N_SEGMENTS,
    compactness: float = COMPACTNESS,
    work_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> DetectionResult:
    """Run the VHR classifier over ``scene`` (a uint8 RGB GeoTIFF/COG) with Texty's tile rule.

    ``work_dir`` set: also writes a uint8 probability COG (superpixel probability x 255 of every scored
    superpixel) there and returns its path in ``probability_path``. ``settings``: onnxruntime providers and the
    minimum mapping unit.
    """
    model = load_vhr_model(model_dir, settings.providers)
    path = Path(scene.reflectance_path)
    if not path.is_file():
        raise InputError(f"{path}: scene raster not found")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"{path}: not a readable raster ({err})") from err
    with src:
        if src.dtypes[0] != "uint8":
            raise InputError(f"{path}: {src.dtypes[0]} data; the VHR classifier needs 8-bit RGB (uint8) imagery")
        bands = _rgb_indexes(scene, src.count)
        gsd = _metres_per_pixel(src)
        tile_px = max(16, round(tile_m / gsd))
        scale = gsd / CHIP_GSD  # tiles are read at the chips' resolution
        crs = CRS.from_user_input(src.crs)
        prob_ds = _open_probability(work_dir, scene, model, src) if work_dir is not None else None
        windows = [Window(c, r, min(tile_px, src.width - c), min(tile_px, src.height - r))
                   for r in range(0, src.height, tile_px) for c in range(0, src.width, tile_px)]
        geoms: list[shapely.Geometry] = []
        probs: list[float] = []
        flagged = 0
        scored = 0
        for i, win in enumerate(windows):
            out_h = max(1, round(win.height * scale))
            out_w = max(1, round(win.width * scale))
            rgb = src.read(bands, window=win, out_shape=(3, out_h, out_w), resampling=Resampling.average)
            valid = src.dataset_mask(window=win, out_shape=(out_h, out_w), resampling=Resampling.nearest) > 0
            rgb = np.ascontiguousarray(rgb.transpose(1, 2, 0))
            if valid.mean() < 0.05 or min(out_h, out_w) < 16:
                if progress:
                    progress((i + 1) / len(windows), f"tile {i + 1}/{len(windows)}")
                continue
            labels, sps = tile_superpixels(rgb, n_segments, compactness, valid)
            sps = [s for s in sps if s.valid_fraction >= MIN_VALID]
            p = model.score_many([s.crop for s in sps], gsd=CHIP_GSD)
            scored += len(sps)
            positive = [s for s, pr in zip(sps, p, strict=True) if pr >= model.threshold]
            tile_transform = src.window_transform(win) * Affine.scale(win.width / out_w, win.height / out_h)
            if prob_ds is not None:
                _write_probability(prob_ds, win, labels, sps, p)
            if len(positive) > flag_count:
                flagged += 1
                prob_of = {s.label: float(pr) for s, pr in zip(sps, p, strict=True) if pr >= model.threshold}
                mask = np.isin(labels, list(prob_of))
                for geom, value in shapes(labels, mask=mask, transform=tile_transform, connectivity=4):
                    geoms.append(shapely.geometry.shape(geom))
                    probs.append(prob_of[int(value)])
            if progress:
                progress((i + 1) / len(windows), f"tile {i + 1}/{len(windows)}")
        prob_path = None
        if prob_ds is not None and work_dir is not None:
            prob_path = _finish_probability(prob_ds, work_dir, scene, model)
        polygons = _polygons(geoms, probs, crs, settings.min_mapping_unit_ha)
    log.info("VHR %s: %d tiles (%d m), %d superpixels scored, %d tiles flagged, %d polygons", scene.scene_key,
             len(windows), round(tile_m), scored, flagged, len(polygons))
    return DetectionResult(
        scene_key=scene.scene_key,
        model_name=model.name,
        model_version=model.version,
        observed_at=scene.acquired,
        polygons=polygons,
        probability_path=prob_path,
        provider=model.provider,
        clear_sky=clear_sky_footprint(scene.cloud_mask_path),
        parameters={
            "threshold": model.threshold,
            "flag_count": flag_count,
            "rule": f"tile flagged when more than {flag_count} superpixels are positive",
            "tile_m": tile_m,
            "tile_px": tile_px,
            "n_segments": n_segments,
            "compactness": compactness,
            "tiles": len(windows),
            "tiles_flagged": flagged,
            "superpixels_scored": scored,
            "min_area_ha": settings.min_mapping_unit_ha,
        },
    )


def _polygons(geoms: list[shapely.Geometry], probs: list[float], crs: CRS, min_area_ha: float) -> list[DetectedPolygon]:
    if not geoms:
        return []
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    arr = np.asarray(geoms, dtype=object)
    parts = shapely.get_parts(shapely.union_all(shapely.make_valid(arr)))
    parts = [g for g in parts if g.geom_type == "Polygon" and not g.is_empty]
    points = shapely.STRtree(shapely.point_on_surface(arr))  # one point inside each superpixel polygon
    p = np.asarray(probs)
    weights = shapely.area(arr)
    out: list[DetectedPolygon] = []
    for part in parts:
        inside = np.asarray(points.query(part, predicate="contains"), dtype=int)
        conf = float(np.average(p[inside], weights=weights[inside])) if inside.size else float(p.mean())
        wgs = shapely.transform(part, lambda xy: np.column_stack(to_wgs.transform(xy[:, 0], xy[:, 1])))
        area_ha = geodesic_area_ha(wgs)
        if area_ha < min_area_ha:
            continue
        out.append(DetectedPolygon(geometry=wgs, cls="pit", area_ha=area_ha, confidence=conf))
    out.sort(key=lambda d: -d.area_ha)
    return out


def _prob_tmp(work_dir: Path, scene: IngestedScene, model: Any) -> Path:
    return Path(work_dir) / f"{scene.scene_key}__{model.name}-{model.version}__prob.tmp.tif"


def _open_probability(work_dir: Path, scene: IngestedScene, model: Any, src: rasterio.io.DatasetReader) -> Any:
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
               "crs": src.crs, "transform": src.transform, "nodata": None, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate"}
    ds = rasterio.open(_prob_tmp(work_dir, scene, model), "w", **profile)
    ds.set_band_description(1, "pit")
    return ds


def _write_probability(ds: Any, win: Window, labels: np.ndarray, sps: list[Any], p: np.ndarray) -> None:
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint8)
    for s, pr in zip(sps, p, strict=True):
        lut[s.label] = np.uint8(round(float(pr) * 255))
    h, w = int(win.height), int(win.width)
    rows = np.minimum((np.arange(h) * labels.shape[0] / h).astype(int), labels.shape[0] - 1)
    cols = np.minimum((np.arange(w) * labels.shape[1] / w).astype(int), labels.shape[1] - 1)
    ds.write(lut[labels[np.ix_(rows, cols)]][None], window=win)


def _finish_probability(ds: Any, work_dir: Path, scene: IngestedScene, model: Any) -> Path:
    from amberwatch.cog import to_cog

    tmp = Path(ds.name)
    ds.close()
    out = Path(work_dir) / f"{scene.scene_key}__{model.name}-{model.version}__prob.tif"
    to_cog(tmp, out, overview_resampling="NEAREST", predictor=False)
    tmp.unlink(missing_ok=True)
    return out
