"""Block-wise resampling of the band files onto the target grid, then COG writing (memory stays bounded).

Pass 1 reads ``block_rows`` rows of every band at a time (WarpedVRT when a band is not on the target grid),
converts DN to reflectance * 10000 (uint16, 0 = nodata; valid reflectance <= 0 is stored as 1) and writes a
tiled intermediate GeoTIFF plus a raw cloud/invalid mask; the reflectance overviews are computed from the same
blocks as they go by (:mod:`amberwatch.ingest.overviews`). Pass 2 dilates the cloud mask block by block (with a
halo) and counts cloud pixels. Both intermediates are then converted to COGs with GDAL's COG driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from amberwatch.cog import to_cog
from amberwatch.errors import InputError
from amberwatch.ingest import cloud, s2cloud
from amberwatch.ingest.overviews import HalfResolution
from amberwatch.ingest.plan import BandSource, Grid, ScenePlan
from amberwatch.ingest.rasters import (
    READ_ERRORS,
    display_path,
    grid_of,
    open_raster,
    read_error,
    same_grid,
    verify_readable,
)
from amberwatch.ingest.safety import DEFAULT_LIMITS, IngestLimits
from amberwatch.types import REFLECTANCE_SCALE

Tick = Callable[[float, str], None]
CLOUD_BIT = 1
INVALID_BIT = 2
SPECTRAL_NAMES = ("blue", "green", "red", "swir16", "cirrus")
_INTERMEDIATE = {
    "driver": "GTiff", "tiled": True, "blockxsize": 512, "blockysize": 512,
    "compress": "ZSTD", "zstd_level": 1, "predictor": 2, "BIGTIFF": "IF_SAFER",
}


@dataclass
class WriteStats:
    valid_pixels: int
    cloud_pixels: int  # cloud/shadow among valid pixels
    total_pixels: int
    footprint_mask: NDArray[np.bool_]  # decimated valid mask
    footprint_step: int  # decimation factor of footprint_mask


class _Dataset:
    """One opened source file on the target grid, shared by the bands it holds: each window is decoded once for all
    of them (a band-by-band read of a pixel-interleaved file would decode every block once per band)."""

    def __init__(self, ds: rasterio.io.DatasetReader, path: str) -> None:
        self.ds, self.path = ds, path
        self.indexes: list[int] = []
        self._window: Window | None = None
        self._data: NDArray | None = None

    def read(self, index: int, window: Window) -> NDArray:
        if self._data is None or self._window != window:
            try:
                self._data = self.ds.read(self.indexes, window=window)
            except READ_ERRORS as err:
                raise read_error(self.path, err) from err
            self._window = window
        return self._data[self.indexes.index(index)]

    def release(self) -> None:
        self._data = self._window = None


def _open_shared(src: BandSource, grid: Grid, stack: ExitStack, limits: IngestLimits,
                 shared: dict[tuple, _Dataset]) -> _Dataset:
    key = (src.path, src.nodata, src.resampling)
    if key not in shared:
        ds = stack.enter_context(open_raster(src.path, limits))
        verify_readable(ds, src.path)
        if not same_grid(grid_of(ds), grid):
            kwargs = {} if src.nodata is None else {"src_nodata": src.nodata, "nodata": src.nodata}
            ds = stack.enter_context(
                WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                          resampling=src.resampling, **kwargs)
            )
        shared[key] = _Dataset(ds, src.path)
    return shared[key]


class _Reader:
    """Reads windows of one source band on the target grid (through the file's shared :class:`_Dataset`)."""

    def __init__(self, src: BandSource, grid: Grid, stack: ExitStack, limits: IngestLimits,
                 shared: dict[tuple, _Dataset] | None = None) -> None:
        self.src = src
        self.dataset = _open_shared(src, grid, stack, limits, {} if shared is None else shared)
        if src.index > self.dataset.ds.count:
            raise InputError(f"{display_path(src.path)} has {self.dataset.ds.count} band(s), band {src.index} was "
                             "expected")
        if src.index not in self.dataset.indexes:
            self.dataset.indexes.append(src.index)

    def read(self, window: Window) -> NDArray:
        return self.dataset.read(self.src.index, window)

    def valid(self, raw: NDArray) -> NDArray[np.bool_]:
        ok = np.ones(raw.shape, dtype=bool)
        if np.issubdtype(raw.dtype, np.floating):
            ok &= np.isfinite(raw)
        if self.src.nodata is not None and not math.isnan(self.src.nodata):
            ok &= raw != self.src.nodata
        return ok


@dataclass
class _Block:
    """One block of rows as read from the sources: each band's raw values, the QA/SCL band, the alpha band."""

    raws: list[NDArray]
    qa: NDArray | None
    alpha: NDArray | None


class _BlockFetcher:
    """Reads every source of a block of rows (each file decoded once for all its bands), then drops the files'
    cached windows: the returned arrays keep what they need. Called from one helper thread at a time."""

    def __init__(self, readers: list[_Reader], qa: _Reader | None, alpha: _Reader | None) -> None:
        self.readers, self.qa, self.alpha = readers, qa, alpha

    def __call__(self, win: Window) -> _Block:
        block = _Block([r.read(win) for r in self.readers], self.qa.read(win) if self.qa else None,
                       self.alpha.read(win) if self.alpha else None)
        for reader in (*self.readers, self.qa, self.alpha):
            if reader is not None:
                reader.dataset.release()
        return block


def _to_uint16(raw: NDArray, src: BandSource) -> tuple[NDArray[np.uint16], NDArray[np.float32]]:
    refl = raw.astype(np.float32)
    refl *= np.float32(src.scale)  # in place: the same float32 operations, fewer full-block temporaries
    refl += np.float32(src.offset)
    q = (refl if np.issubdtype(raw.dtype, np.integer) else np.nan_to_num(refl, nan=0.0)) / REFLECTANCE_SCALE
    np.rint(q, out=q)
    np.clip(q, 1, 65535, out=q)
    return q.astype(np.uint16), refl


def write_scene(plan: ScenePlan, refl_path: Path, mask_path: Path | None, work: Path, tick: Tick,
                block_rows: int = 512, limits: IngestLimits = DEFAULT_LIMITS) -> WriteStats:
    """Write ``refl_path`` (and ``mask_path`` unless the plan has no mask) as COGs; intermediates go to ``work``.

    Every band file is opened through ``open_raster`` (sniffed, one driver, pixel limit): call inside
    ``safety.gdal_guard()``."""
    grid = plan.grid
    uint8 = plan.output_dtype == "uint8"
    refl_tmp = work / "reflectance_stack.tif"
    raw_mask_tmp = work / "mask_raw.tif"
    step = max(1, math.ceil(max(grid.width, grid.height) / 1000))
    foot_rows: list[NDArray[np.bool_]] = []
    n_blocks = math.ceil(grid.height / block_rows)
    base = {"crs": grid.crs, "transform": grid.transform, "width": grid.width, "height": grid.height}
    with ExitStack() as stack:
        shared: dict[tuple, _Dataset] = {}
        readers = [_Reader(b, grid, stack, limits, shared) for b in plan.bands]
        mask_reader = None
        if plan.mask.path is not None:
            mask_src = BandSource("mask", "mask", plan.mask.path, plan.mask.index, nodata=None,
                                  resampling=Resampling.nearest)
            mask_reader = _Reader(mask_src, grid, stack, limits)
        alpha_reader = _Reader(plan.alpha, grid, stack, limits) if plan.alpha else None
        dst = stack.enter_context(rasterio.open(
            refl_tmp, "w", **_INTERMEDIATE, **base, count=len(plan.bands), dtype=plan.output_dtype,
            nodata=None if uint8 else 0, interleave="band",
        ))
        _describe(dst, plan)
        mdst = stack.enter_context(rasterio.open(raw_mask_tmp, "w", **_INTERMEDIATE, **base, count=1, dtype="uint8"))
        half = None if uint8 else HalfResolution(work / "reflectance_half.tif", grid, len(plan.bands))
        if half is not None:
            stack.callback(half.close)
        qa_reader = mask_reader if plan.mask.kind not in ("spectral", "none") else None
        fetch = _BlockFetcher(readers, qa_reader, alpha_reader)
        # the next block is read (decoded, warped) in a helper thread while this one is converted and written; the
        # pool closes before the datasets (ExitStack order), so no read outlives them
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        windows = [Window(0, row0, grid.width, min(block_rows, grid.height - row0))
                   for row0 in range(0, grid.height, block_rows)]
        pending = pool.submit(fetch, windows[0])
        for k, win in enumerate(windows):
            row0, h = win.row_off, win.height
            block = pending.result()
            if k + 1 < len(windows):
                pending = pool.submit(fetch, windows[k + 1])
            out = np.zeros((len(readers), h, grid.width), dtype=plan.output_dtype)
            valid = np.ones((h, grid.width), dtype=bool)
            spectral: dict[str, NDArray] = {}
            for i, reader in enumerate(readers):
                raw = block.raws[i]
                valid &= reader.valid(raw)
                if uint8:
                    out[i] = raw
                else:
                    out[i], refl = _to_uint16(raw, reader.src)
                    if plan.mask.kind == "spectral" and reader.src.name in SPECTRAL_NAMES:
                        spectral[reader.src.name] = refl
                del raw
            block.raws.clear()
            if block.alpha is not None:
                valid &= block.alpha > 0
            if uint8:
                dst.write(out, window=win)
                if alpha_reader is not None or any(r.src.nodata is not None for r in readers):
                    dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=win)
            else:
                out[:, ~valid] = 0
                dst.write(out, window=win)
                if half is not None:
                    half.add(out, row0)
            del out
            cloudy = _block_clouds(plan, spectral, block.qa, valid.shape)
            mdst.write((cloudy * CLOUD_BIT + (~valid) * INVALID_BIT).astype(np.uint8)[None], window=win)
            foot_rows.append(valid[(-row0) % step :: step, ::step])
            tick(0.8 * (k + 1) / n_blocks, f"resampling bands, block {k + 1}/{n_blocks}")

    stats = _finish_mask(plan, raw_mask_tmp, work / "mask_final.tif", block_rows)
    stats.footprint_mask = np.concatenate(foot_rows, axis=0)
    stats.footprint_step = step
    if stats.valid_pixels == 0:
        raise InputError("the input has no valid pixels (every pixel is nodata/fill)")
    if plan.mask.kind == "s2cloudless" and mask_path is not None:  # L1C: a whole-scene pass on a coarse grid
        tick(0.81, "s2cloudless cloud and shadow mask")
        stats.cloud_pixels = s2cloud.scene_mask_pass(refl_tmp, work / "mask_final.tif", [b.name for b in plan.bands],
                                                     plan.acquired, block_rows)
    if half is not None:  # after the s2cloudless pass: it averages the full-resolution stack itself
        half.attach(refl_tmp)
    tick(0.82, "writing reflectance COG")
    # the guard hides files next to an opened one (GDAL_DISABLE_READDIR_ON_OPEN): the stack is ours, in our work
    # directory, so GDAL may see its .ovr there (else the COG driver would compute the overviews again)
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
        to_cog(refl_tmp, refl_path, overview_resampling="AVERAGE", level=1)  # level 1: ~2x faster, ~5 % larger
    if mask_path is not None:
        tick(0.95, "writing cloud mask COG")
        to_cog(work / "mask_final.tif", mask_path, overview_resampling="MODE", level=1)
    return stats


def _describe(dst: rasterio.io.DatasetWriter, plan: ScenePlan) -> None:
    dst.descriptions = tuple(b.name for b in plan.bands)
    for i, band in enumerate(plan.bands, start=1):
        dst.update_tags(i, BAND_ID=band.band_id, COMMON_NAME=band.name)
    if plan.output_dtype == "uint16":
        dst.scales = (REFLECTANCE_SCALE,) * len(plan.bands)
        dst.offsets = (0.0,) * len(plan.bands)
    dst.update_tags(
        SCENE_KEY=plan.scene_key, SENSOR=plan.sensor, LEVEL=plan.level,
        ACQUISITION_DATETIME=plan.acquired.isoformat().replace("+00:00", "Z"),
        VALUES="reflectance * 10000, 0 = nodata" if plan.output_dtype == "uint16" else "source RGB values (uint8)",
    )


def _block_clouds(plan: ScenePlan, spectral: dict[str, NDArray], qa: NDArray | None,
                  shape: tuple[int, int]) -> NDArray[np.bool_]:
    """The block's cloud/shadow mask: the spectral test on ``spectral``, else the QA/SCL classes ``qa`` (None: no
    mask source)."""
    kind = plan.mask.kind
    if kind == "spectral":
        return cloud.spectral_mask(spectral)
    if kind == "none" or qa is None:
        return np.zeros(shape, dtype=bool)
    if kind == "scl":
        return cloud.scl_mask(qa)
    if kind == "landsat_qa_c2":
        return cloud.landsat_qa_c2_mask(qa)
    if kind == "landsat_qa_c1":
        return cloud.landsat_qa_c1_mask(qa, cirrus=plan.sensor in ("landsat8", "landsat9"))
    if kind == "landsat_qa_pre":
        return cloud.landsat_qa_pre_mask(qa)
    raise ValueError(f"unknown mask kind {kind}")


def _finish_mask(plan: ScenePlan, raw_path: Path, final_path: Path, block_rows: int) -> WriteStats:
    """Despeckle + dilate the cloud bit (with a halo between blocks), merge invalid pixels, count."""
    res = abs(plan.grid.transform.a) if plan.grid.crs.is_projected else 1.0
    radius = int(round(plan.mask.dilate_m / res)) if plan.mask.dilate_m > 0 else 0
    halo = radius + 2 if radius else 0
    valid_n = cloud_n = 0
    with rasterio.open(raw_path) as src:
        profile = {k: v for k, v in src.profile.items() if k not in ("nodata",)}
        with rasterio.open(final_path, "w", **{**profile, **_INTERMEDIATE}) as dst:
            dst.update_tags(VALUES="1 = cloud/shadow/invalid, 0 = clear", METHOD=plan.mask.description)
            dst.descriptions = ("cloud_mask",)
            for row0 in range(0, src.height, block_rows):
                h = min(block_rows, src.height - row0)
                top = max(0, row0 - halo)
                bottom = min(src.height, row0 + h + halo)
                raw = src.read(1, window=Window(0, top, src.width, bottom - top))
                cloudy = (raw & CLOUD_BIT) > 0
                if radius:
                    cloudy = cloud.dilate(cloud.despeckle(cloudy), radius)
                cloudy = cloudy[row0 - top : row0 - top + h]
                invalid = (raw[row0 - top : row0 - top + h] & INVALID_BIT) > 0
                valid_n += int((~invalid).sum())
                cloud_n += int((cloudy & ~invalid).sum())
                dst.write((cloudy | invalid).astype(np.uint8)[None], window=Window(0, row0, src.width, h))
    total = plan.grid.width * plan.grid.height
    return WriteStats(valid_n, cloud_n, total, np.zeros((0, 0), dtype=bool), 1)


