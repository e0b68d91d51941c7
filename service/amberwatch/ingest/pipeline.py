"""``ingest_path``: recognise the input, write reflectance + cloud mask COGs atomically, describe them in STAC."""

from __future__ import annotations

import logging
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import rasterio

from amberwatch.errors import InputError
from amberwatch.ingest import geotiff, landsat, sentinel2
from amberwatch.ingest.footprint import footprint_wgs84
from amberwatch.ingest.plan import ScenePlan
from amberwatch.ingest.rasters import ground_resolution
from amberwatch.ingest.stac import build_item
from amberwatch.ingest.writer import write_scene
from amberwatch.types import IngestedScene

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img"}
GDAL_CACHE_BYTES = 256 * 1024 * 1024  # rasterio passes GDAL_CACHEMAX to GDALSetCacheMax64: bytes


def plan_input(path: Path) -> ScenePlan:
    """Recognise what ``path`` is and return the matching reading plan."""
    if not path.exists():
        raise InputError(f"input path does not exist: {path}")
    if path.is_dir():
        if sentinel2.find_mtd(path):
            return sentinel2.plan_safe_dir(path)
        if path.suffix.upper() == ".SAFE":
            raise InputError(f"{path} has no MTD_MSIL1C.xml / MTD_MSIL2A.xml: not a complete Sentinel-2 .SAFE")
        mtl = landsat.find_mtl(path)
        if mtl:
            return landsat.plan_landsat(mtl)
        if sentinel2.is_band_folder(path):
            return sentinel2.plan_band_folder(path)
        raise InputError(
            f"{path}: no recognised imagery in this folder (expected a Sentinel-2 .SAFE, Sentinel-2 band files "
            "named *_B02.jp2/.tif, or a Landsat *_MTL.txt with band files)"
        )
    suffix = path.suffix.lower()
    if suffix == ".zip" or (suffix not in RASTER_SUFFIXES and zipfile.is_zipfile(path)):
        return sentinel2.plan_safe_zip(path)
    if landsat.MTL_NAME.search(path.name):
        return landsat.plan_landsat(path)
    if suffix in RASTER_SUFFIXES:
        return geotiff.plan_geotiff(path)
    if path.name.upper().startswith("MTD_MSIL") and suffix == ".xml":
        return sentinel2.plan_safe_dir(path.parent)
    raise InputError(f"{path}: unsupported input (expected .SAFE, .zip, a folder, a GeoTIFF/JP2 or *_MTL.txt)")


def ingest_path(path: Path, out_dir: Path, progress: Progress | None = None) -> IngestedScene:
    """Ingest one scene into ``out_dir`` (must not exist yet; it is created atomically, or not at all).

    Writes ``reflectance.tif`` (COG, uint16 reflectance x 10000, nodata 0; uint8 RGB for VHR) and
    ``cloud_mask.tif`` (COG, uint8, 1 = cloud/shadow/invalid; not for VHR). Raises InputError for bad input.
    """
    path, out_dir = Path(path), Path(out_dir)
    tick: Progress = progress or (lambda _f, _m: None)
    if out_dir.exists():
        raise FileExistsError(f"output directory already exists: {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.part-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES, GDAL_NUM_THREADS="ALL_CPUS"):
            tick(0.0, f"reading {path.name}")
            plan = plan_input(path)
            log.info("ingesting %s as %s %s (%s)", path, plan.family, plan.level, plan.scene_key)
            tick(0.02, f"{plan.scene_key}: {len(plan.bands)} bands on a {plan.grid.width}x{plan.grid.height} grid")
            work = staging / "_work"
            work.mkdir()
            has_mask = plan.family != "vhr_rgb"
            stats = write_scene(
                plan, staging / "reflectance.tif", staging / "cloud_mask.tif" if has_mask else None, work,
                lambda f, m: tick(0.02 + 0.95 * f, m),
            )
            shutil.rmtree(work)
            footprint = footprint_wgs84(plan.grid, stats.footprint_mask, stats.footprint_step)
        refl_path = out_dir / "reflectance.tif"
        mask_path = out_dir / "cloud_mask.tif" if has_mask else None
        cloud_fraction = stats.cloud_pixels / stats.valid_pixels if has_mask else 0.0
        resolution = ground_resolution(plan.grid)
        item = build_item(
            plan, footprint, resolution, 100.0 * cloud_fraction if has_mask else None, refl_path, mask_path,
            extra={"amberwatch:source": str(path),
                   "amberwatch:valid_fraction": round(stats.valid_pixels / stats.total_pixels, 6),
                   "amberwatch:cloud_fraction": round(cloud_fraction, 6) if has_mask else None,
                   "amberwatch:cloud_mask_method": plan.mask.description or None},
        )
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tick(1.0, f"{plan.scene_key} ingested")
    epsg = plan.grid.crs.to_epsg()
    return IngestedScene(
        scene_key=plan.scene_key, sensor=plan.sensor, family=plan.family, level=plan.level, acquired=plan.acquired,
        bands=[b.name for b in plan.bands], resolution=resolution,
        crs=f"EPSG:{epsg}" if epsg else plan.grid.crs.to_wkt(), bounds=plan.grid.bounds, footprint_wgs84=footprint,
        reflectance_path=refl_path, cloud_mask_path=mask_path, source=str(path), cloud_fraction=cloud_fraction,
        stac_item=item,
    )
