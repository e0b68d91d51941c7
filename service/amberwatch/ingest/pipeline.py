"""``ingest_path``: recognise the input, write reflectance + cloud mask COGs atomically, describe them in STAC.

Untrusted input: everything runs inside ``safety.gdal_guard()`` with ``IngestLimits`` passed in (see
``amberwatch.ingest.safety``); ``recognise_input`` is the one recogniser of input layouts (``amberwatch track``
uses it to expand directories).
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from amberwatch.errors import InputError
from amberwatch.ingest import geotiff, landsat, s2cloud, sentinel1, sentinel2
from amberwatch.ingest.footprint import footprint_wgs84
from amberwatch.ingest.plan import MaskSource, ScenePlan
from amberwatch.ingest.rasters import ground_resolution, open_raster
from amberwatch.ingest.safety import DEFAULT_LIMITS, IngestLimits, check_input_path, gdal_guard
from amberwatch.ingest.stac import build_item
from amberwatch.ingest.writer import write_scene
from amberwatch.types import IngestedScene

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2"}
REFUSED_SUFFIXES = {".vrt": "GDAL VRTs (XML files that point at other files or URLs) are not accepted"}
GDAL_CACHE_BYTES = 256 * 1024 * 1024  # rasterio passes GDAL_CACHEMAX to GDALSetCacheMax64: bytes
L1cCloudMask = Literal["spectral", "s2cloudless"]
InputKind = Literal["safe_dir", "landsat_dir", "band_folder", "safe_zip", "landsat_mtl", "raster", "safe_mtd"]


def recognise_input(path: Path) -> InputKind | None:
    """What kind of scene ``path`` is, from names only (no file is parsed); None when it is not a scene.

    A folder is a scene when it is a .SAFE (or holds MTD_MSIL*.xml), holds a Landsat *_MTL.txt, or holds
    Sentinel-2 band files (*_B02.jp2/.tif ...); a file when it is a zip, a *_MTL.txt, a GeoTIFF/JP2 or an
    MTD_MSIL*.xml. Raises InputError for paths that are never accepted (``..``, /vsi prefixes, URLs, VRTs).
    """
    check_input_path(path)
    if path.is_dir():
        if sentinel2.find_mtd(path) or path.suffix.upper() == ".SAFE":
            return "safe_dir"
        if landsat.find_mtl(path):
            return "landsat_dir"
        if sentinel2.is_band_folder(path):
            return "band_folder"
        return None
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix in REFUSED_SUFFIXES:
        raise InputError(f"{path.name}: {REFUSED_SUFFIXES[suffix]}; send the GeoTIFF or JPEG 2000 file itself")
    if suffix == ".zip" or (suffix not in RASTER_SUFFIXES and zipfile.is_zipfile(path)):
        return "safe_zip"
    if landsat.MTL_NAME.search(path.name):
        return "landsat_mtl"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if path.name.upper().startswith("MTD_MSIL") and suffix == ".xml":
        return "safe_mtd"
    return None


def plan_input(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    """Recognise what ``path`` is and return the matching reading plan (headers only: cheap).

    Messages name files by their base name only. Runs inside ``gdal_guard()``; ``limits`` bound every size."""
    path = Path(path)
    check_input_path(path)
    if not path.exists():
        raise InputError(f"input path does not exist: {path.name}")
    with gdal_guard():
        plan = _plan(path, recognise_input(path), limits)
        check_plan_files(plan, limits)
    plan.scene_key = safe_scene_key(plan.scene_key)
    return plan


def check_plan_files(plan: ScenePlan, limits: IngestLimits) -> None:
    """Open the header of every file the plan will read (sniffed, one driver, size limits), so a bad band file
    is refused at recognition, before any work starts or a stored scene is reused under this scene's key."""
    paths = [b.path for b in plan.bands] + [p for p in (plan.mask.path, plan.alpha.path if plan.alpha else None) if p]
    for gdal_path in dict.fromkeys(paths):
        with open_raster(gdal_path, limits):
            pass


def _plan(path: Path, kind: InputKind | None, limits: IngestLimits) -> ScenePlan:
    if kind in ("safe_dir", "safe_zip", "raster") and sentinel1.is_s1_name(path.name):
        raise InputError(f"{path.name} is Sentinel-1 radar data: this ingest takes optical scenes; Sentinel-1 "
                         "backscatter is read by amberwatch.ingest.ingest_s1 (docs/sentinel1.md)")
    if kind == "safe_dir":
        if not sentinel2.find_mtd(path):
            raise InputError(f"{path.name} has no MTD_MSIL1C.xml / MTD_MSIL2A.xml: not a complete Sentinel-2 .SAFE")
        return sentinel2.plan_safe_dir(path, limits)
    if kind == "landsat_dir":
        mtl = landsat.find_mtl(path)
        if mtl is None:
            raise InputError(f"{path.name} has no Landsat *_MTL.txt")
        return landsat.plan_landsat(mtl, limits)
    if kind == "band_folder":
        return sentinel2.plan_band_folder(path, limits)
    if kind == "safe_zip":
        return sentinel2.plan_safe_zip(path, limits)
    if kind == "landsat_mtl":
        return landsat.plan_landsat(path, limits)
    if kind == "raster":
        return geotiff.plan_geotiff(path, limits)
    if kind == "safe_mtd":
        return sentinel2.plan_safe_dir(path.parent, limits)
    if path.is_dir():
        raise InputError(
            f"{path.name}: no recognised imagery in this folder (expected a Sentinel-2 .SAFE, Sentinel-2 band files "
            "named *_B02.jp2/.tif, or a Landsat *_MTL.txt with band files)"
        )
    raise InputError(f"{path.name}: unsupported input (expected .SAFE, .zip, a folder, a GeoTIFF/JP2 or *_MTL.txt)")


def use_s2cloudless(plan: ScenePlan) -> None:
    """Switch a Sentinel-2 L1C plan that would use the spectral test (no SCL) to s2cloudless + shadows."""
    names = {b.name for b in plan.bands}
    if (plan.family == "sentinel2" and plan.level == "L1C" and plan.mask.kind == "spectral"
            and names.issuperset((*s2cloud.MODEL_BANDS, "green"))):
        plan.mask = MaskSource("s2cloudless", description=s2cloud.S2CLOUDLESS_DESCRIPTION)


def safe_scene_key(key: str) -> str:
    """A scene key usable as one directory name: [A-Za-z0-9_.-] only, no '..', at most 120 characters.

    Keys come partly from file names and metadata (e.g. LANDSAT_PRODUCT_ID); the key names the stored scene's
    folder, so it must never be able to climb out of it."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", key)
    clean = re.sub(r"\.{2,}", "-", clean).lstrip(".-")[:120]
    if not clean:
        raise InputError("the input gives no usable scene name")
    return clean


def ingest_path(path: Path, out_dir: Path, progress: Progress | None = None,
                limits: IngestLimits = DEFAULT_LIMITS, l1c_cloud_mask: L1cCloudMask = "spectral") -> IngestedScene:
    """Ingest one scene into ``out_dir`` (must not exist yet; it is created atomically, or not at all).

    Writes ``reflectance.tif`` (COG, uint16 reflectance x 10000, nodata 0; uint8 RGB for VHR) and
    ``cloud_mask.tif`` (COG, uint8, 1 = cloud/shadow/invalid; not for VHR). Raises InputError for bad input,
    including input refused by the guards of ``amberwatch.ingest.safety`` under ``limits``. ``l1c_cloud_mask``
    picks the Sentinel-2 L1C cloud mask: the spectral test, or s2cloudless with shadows (``ingest.s2cloud``).
    """
    path, out_dir = Path(path), Path(out_dir)
    tick: Progress = progress or (lambda _f, _m: None)
    check_input_path(path)
    if out_dir.exists():
        raise FileExistsError(f"output directory already exists: {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.part-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with gdal_guard(GDAL_CACHEMAX=GDAL_CACHE_BYTES, GDAL_NUM_THREADS="ALL_CPUS"):
            tick(0.0, f"reading {path.name}")
            plan = plan_input(path, limits)
            if l1c_cloud_mask == "s2cloudless":
                use_s2cloudless(plan)
            log.info("ingesting %s as %s %s (%s)", path, plan.family, plan.level, plan.scene_key)
            tick(0.02, f"{plan.scene_key}: {len(plan.bands)} bands on a {plan.grid.width}x{plan.grid.height} grid")
            work = staging / "_work"
            work.mkdir()
            has_mask = plan.family != "vhr_rgb"
            stats = write_scene(
                plan, staging / "reflectance.tif", staging / "cloud_mask.tif" if has_mask else None, work,
                lambda f, m: tick(0.02 + 0.95 * f, m), limits=limits,
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
