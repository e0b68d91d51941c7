"""Sliding-window segmentation of a reflectance COG into a pit/pond probability COG, with bounded memory.

Each output window (``settings.window_size`` pixels square) is predicted from an input read with a context
margin on every side (reflect padding where the margin leaves the raster, and up to a multiple of the model's
``amberwatch:input_multiple``); the margin is cropped away, so window borders leave no seams as long as the
model's receptive field is within the margin. Windows go to a tiled GTiff which is then copied to a COG.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from amberwatch.cog import to_cog
from amberwatch.detect.decision import DecisionRule
from amberwatch.detect.registry import ModelInfo
from amberwatch.detect.session import ModelRunner, create_session
from amberwatch.errors import AmberWatchError, InputError
from amberwatch.settings import Settings
from amberwatch.types import (
    LANDSAT_OLI_BANDS,
    LANDSAT_TM_BANDS,
    REFLECTANCE_SCALE,
    SENTINEL2_BAND_IDS,
    SENTINEL2_BANDS,
    IngestedScene,
)

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction done 0..1, message): the team's progress convention
WindowSink = Callable[[Window, np.ndarray], None]  # (core window, uint8 [2, h, w] pit/pond probabilities x 255)

DEFAULT_MARGIN = 32  # context pixels read around each window and discarded after inference
PROB_BANDS = ("pit", "pond")  # output bands; model output channels are [background, pit, pond]
GDAL_CACHE_LIMITS = (64 << 20, 1 << 30)  # bounds of the GDAL block cache we ask for (bytes)
KNOWN_BANDS = frozenset(SENTINEL2_BANDS) | set(LANDSAT_OLI_BANDS) | set(LANDSAT_TM_BANDS)
S2_ID_TO_NAME = dict(zip(SENTINEL2_BAND_IDS, SENTINEL2_BANDS, strict=True))


@dataclass(frozen=True)
class Tile:
    """One output window and how its padded model input maps onto the raster."""

    core: Window  # output pixels
    read: Window  # pixels read (core + margin, clipped to the raster)
    pad: tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right)) to reach the model input size

    @property
    def core_offset(self) -> tuple[int, int]:
        """(row, col) of the core window inside the padded model input."""
        (top, _), (left, _) = self.pad
        return top + self.core.row_off - self.read.row_off, left + self.core.col_off - self.read.col_off


def scene_band_names(descriptions: tuple[str | None, ...], scene: IngestedScene) -> list[str]:
    """eo common names of the COG's bands: its band descriptions when they are known names, else ``scene.bands``."""
    names = [S2_ID_TO_NAME.get((d or "").strip(), (d or "").strip().lower()) for d in descriptions]
    if all(n in KNOWN_BANDS for n in names) and len(set(names)) == len(names):
        return names
    if len(scene.bands) == len(descriptions):
        return list(scene.bands)
    raise InputError(
        f"Cannot tell which band is which in {scene.reflectance_path}: {len(descriptions)} bands, descriptions "
        f"{list(descriptions)}, while the scene lists {len(scene.bands)} bands {scene.bands}"
    )


def band_indexes(available: list[str], wanted: list[str], model_ref: str, scene_key: str) -> list[int]:
    """1-based band indexes of ``wanted`` in ``available``; InputError naming the missing bands."""
    missing = [b for b in wanted if b not in available]
    if missing:
        raise InputError(
            f"Model {model_ref} needs bands {wanted} but scene {scene_key} lacks {missing} (it has {available})"
        )
    return [available.index(b) + 1 for b in wanted]


def plan_tiles(width: int, height: int, size: int, margin: int, input_size: int) -> list[Tile]:
    """Cover the raster with ``size`` windows; each padded to ``input_size`` (>= size + 2 * margin)."""
    tiles = []
    for row in range(0, height, size):
        for col in range(0, width, size):
            h, w = min(size, height - row), min(size, width - col)
            r0, c0 = max(row - margin, 0), max(col - margin, 0)
            r1, c1 = min(row + h + margin, height), min(col + w + margin, width)
            top, left = margin - (row - r0), margin - (col - c0)
            bottom, right = input_size - top - (r1 - r0), input_size - left - (c1 - c0)
            tiles.append(Tile(Window(col, row, w, h), Window(c0, r0, c1 - c0, r1 - r0), ((top, bottom), (left, right))))
    return tiles


def pad_reflect(a: np.ndarray, pad: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Reflect-pad the last two axes (edge-pad an axis of length 1, which cannot be reflected)."""
    widths = [(0, 0)] * (a.ndim - 2) + list(pad)
    if min(a.shape[-2:]) > 1:
        return np.pad(a, widths, mode="reflect")
    return np.pad(a, widths, mode="edge")


@lru_cache(maxsize=4)
def cached_runner(
    onnx_path: str, sha256: str, providers: tuple[str, ...] | None, threads: int | None = None
) -> ModelRunner:
    """One session per model file and provider choice for the life of the process (``threads``: intra-op threads,
    default every core)."""
    session, used = create_session(Path(onnx_path), list(providers) if providers else None, threads=threads)
    return ModelRunner(session, used)


def check_model_io(runner: ModelRunner, model: ModelInfo, n_bands: int) -> None:
    inputs, outputs = runner.session.get_inputs(), runner.session.get_outputs()
    if inputs[0].name != "reflectance" or outputs[0].name != "probabilities":
        raise AmberWatchError(
            f"Model {model.ref} does not follow the contract: input {inputs[0].name!r} (want 'reflectance'), "
            f"output {outputs[0].name!r} (want 'probabilities')"
        )
    channels = inputs[0].shape[1] if len(inputs[0].shape) == 4 else None
    if isinstance(channels, int) and channels != n_bands:
        raise AmberWatchError(
            f"Model {model.ref}: mlm.json lists {n_bands} input bands but the ONNX input has {channels} channels"
        )


class WindowReader:
    """Reads padded, scaled model inputs plus the 'unusable' mask (nodata or cloud) for tiles."""

    def __init__(self, src: rasterio.DatasetReader, indexes: list[int], cloud: rasterio.DatasetReader | None):
        self.src, self.indexes, self.cloud = src, indexes, cloud

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        dn = self.src.read(self.indexes, window=tile.read)
        nodata = ~dn.any(axis=0)  # all bands 0 = nodata
        x = pad_reflect(dn.astype(np.float32) * np.float32(REFLECTANCE_SCALE), tile.pad)
        r, c = tile.core.row_off - tile.read.row_off, tile.core.col_off - tile.read.col_off
        unusable = nodata[r : r + tile.core.height, c : c + tile.core.width]
        if self.cloud is not None:
            unusable = unusable | (self.cloud.read(1, window=tile.core) != 0)
        return x, unusable

    def read_batch(self, tiles: list[Tile]) -> tuple[np.ndarray, list[np.ndarray]]:
        pairs = [self.read(t) for t in tiles]
        return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def open_cloud_mask(stack: ExitStack, scene: IngestedScene, src: rasterio.DatasetReader):
    """The scene's cloud mask on the reflectance grid (warped with nearest neighbour if its grid differs)."""
    if scene.cloud_mask_path is None:
        return None
    mask = stack.enter_context(rasterio.open(scene.cloud_mask_path))
    if mask.crs == src.crs and mask.transform == src.transform and mask.shape == src.shape:
        return mask
    log.info("cloud mask %s is on another grid; warping it to the reflectance grid", scene.cloud_mask_path)
    return stack.enter_context(
        WarpedVRT(
            mask,
            crs=src.crs,
            transform=src.transform,
            width=src.width,
            height=src.height,
            resampling=Resampling.nearest,
        )
    )


def block_cache_bytes(src: rasterio.DatasetReader) -> int:
    """GDAL cache (bytes) holding three rows of source blocks: a window plus its margins spans three block rows,
    so each compressed block is decoded once. Bounded, so a 10980 px S2 tile stays well under 2 GB RSS."""
    bh, bw = src.block_shapes[0]
    row_bytes = math.ceil(src.width / bw) * bw * bh * src.count * np.dtype(src.dtypes[0]).itemsize
    return int(min(max(3.3 * row_bytes, GDAL_CACHE_LIMITS[0]), GDAL_CACHE_LIMITS[1]))


def batched(items: list[Tile], n: int) -> Iterator[list[Tile]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def to_uint8(p: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(p, 0.0, 1.0) * 255.0).astype(np.uint8)


def predict_batch(
    runner: ModelRunner, model: ModelInfo, batch: list[Tile], x: np.ndarray, unusable: list[np.ndarray],
    input_size: int,
) -> list[np.ndarray]:
    """Run the model on a batch read by :class:`WindowReader`: uint8 [2, h, w] pit/pond probabilities (x255) of
    each tile's core window, 0 where unusable. All-nodata / all-cloud windows are not run (all 0).

    Shared by the single-process window loop and the Dask tiles (:mod:`amberwatch.detect.scaleout`).
    """
    run = [j for j, bad in enumerate(unusable) if not bad.all()]  # skip all-nodata / all-cloud windows
    batch_x = x if len(run) == len(batch) else x[run]
    probs = runner(batch_x) if run else np.empty((0, 3, input_size, input_size), np.float32)
    if probs.shape != (len(run), 3, input_size, input_size):
        raise AmberWatchError(
            f"Model {model.ref} returned shape {probs.shape} for input {batch_x.shape}; "
            f"expected ({len(run)}, 3, {input_size}, {input_size})"
        )
    by_tile = dict(zip(run, probs, strict=True))
    outs = []
    for j, (tile, bad) in enumerate(zip(batch, unusable, strict=True)):
        out = np.zeros((len(PROB_BANDS), tile.core.height, tile.core.width), np.uint8)
        if j in by_tile:
            top, left = tile.core_offset
            out = to_uint8(by_tile[j][1:3, top : top + tile.core.height, left : left + tile.core.width])
            out[:, bad] = 0
        outs.append(out)
    return outs


def context_margin(model: ModelInfo) -> int:
    """Context pixels read around each window: the card's ``amberwatch:context_margin``, else DEFAULT_MARGIN."""
    return model.context_margin if model.context_margin is not None else DEFAULT_MARGIN


def check_segmentation_model(model: ModelInfo, scene: IngestedScene, vhr_hint: str) -> None:
    """The model is a segmentation model of the scene's family (``vhr_hint``: what to do with a VHR RGB model)."""
    if model.family != scene.family:
        raise InputError(
            f"Model {model.ref} is for {model.family} imagery but scene {scene.scene_key} is "
            f"{scene.family} ({scene.sensor})"
        )
    if model.family == "vhr_rgb":
        raise InputError(f"{model.ref} is a VHR RGB superpixel classifier: {vhr_hint}")


def result_parameters(rule: DecisionRule, settings: Settings, model: ModelInfo) -> dict:
    """The ``DetectionResult.parameters`` of a segmentation run (the executors add their own keys)."""
    return {
        **rule.as_dict(),
        "window_size": settings.window_size,
        "overlap_margin": context_margin(model),
        "min_area_ha": settings.min_mapping_unit_ha,
        "input_bands": model.input_bands,
        "model_sha256": model.sha256,
    }


def model_input_size(size: int, margin: int, multiple: int) -> int:
    """The model's input side for ``size`` windows with ``margin`` context, rounded up to the model's multiple."""
    return math.ceil((size + 2 * margin) / multiple) * multiple


def predict_probabilities(
    scene: IngestedScene,
    model: ModelInfo,
    out_path: Path,
    settings: Settings,
    progress: Progress | None = None,
    margin: int | None = None,
    sink: WindowSink | None = None,
) -> Path:
    """Run ``model`` over ``scene``; write a COG with uint8 bands ``pit``, ``pond`` (probability x 255).

    ``margin``: context pixels around each window; default the card's ``amberwatch:context_margin``, else 32.
    ``sink``: also called with every window as it is written (e.g. a ``StripVectorizer``: no re-read of the COG).

    Pixels that are nodata or cloudy get probability 0 and are masked in the COG's dataset mask.
    Memory stays bounded: only a batch of windows is held at once.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wanted = model.input_bands
    if not wanted:
        raise AmberWatchError(f"Model {model.ref}: mlm.json has no mlm:input[0].bands")
    if not model.onnx_path.exists():
        raise AmberWatchError(f"Model {model.ref}: {model.onnx_path} is missing from the registry")
    runner = cached_runner(
        str(model.onnx_path), model.sha256, tuple(settings.providers) if settings.providers else None
    )
    check_model_io(runner, model, len(wanted))
    if margin is None:
        margin = context_margin(model)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".prob-") as tmp_dir:
        tmp_path = Path(tmp_dir) / "prob.tif"
        segment_to_gtiff(scene, model, runner, tmp_path, settings.window_size, margin, progress, sink)
        if progress:
            progress(1.0, "writing probability COG")
        to_cog(tmp_path, out_path, overview_resampling="AVERAGE")
    return out_path


def segment_to_gtiff(
    scene: IngestedScene,
    model: ModelInfo,
    runner: ModelRunner,
    tmp_path: Path,
    window_size: int,
    margin: int,
    progress: Progress | None,
    sink: WindowSink | None = None,
) -> None:
    """The window loop: read (in a helper thread, one batch ahead), run the model, crop, mask, write (and hand
    each window to ``sink``)."""
    wanted = model.input_bands
    with ExitStack() as stack:
        src = stack.enter_context(rasterio.open(scene.reflectance_path))
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=block_cache_bytes(src)))
        indexes = band_indexes(scene_band_names(src.descriptions, scene), wanted, model.ref, scene.scene_key)
        cloud = open_cloud_mask(stack, scene, src)
        size = max(1, min(window_size, max(src.width, src.height)))
        input_size = model_input_size(size, margin, model.input_multiple)
        tiles = plan_tiles(src.width, src.height, size, margin, input_size)
        reader = WindowReader(src, indexes, cloud)
        profile = dict(
            driver="GTiff",
            width=src.width,
            height=src.height,
            count=len(PROB_BANDS),
            dtype="uint8",
            crs=src.crs,
            transform=src.transform,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            BIGTIFF="IF_SAFER",
        )
        log.info(
            "segmenting %s with %s on %s: %dx%d px, %d windows of %d (+%d margin, input %d)",
            scene.scene_key,
            model.ref,
            runner.provider,
            src.width,
            src.height,
            len(tiles),
            size,
            margin,
            input_size,
        )
        dst = stack.enter_context(rasterio.open(tmp_path, "w", **profile))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        batches = list(batched(tiles, runner.batch_size))
        pending = pool.submit(reader.read_batch, batches[0])  # read the next batch while the model runs
        done = 0
        for i, batch in enumerate(batches):
            x, unusable = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(reader.read_batch, batches[i + 1])
            outs = predict_batch(runner, model, batch, x, unusable, input_size)
            for tile, out, bad in zip(batch, outs, unusable, strict=True):
                dst.write(out, window=tile.core)
                dst.write_mask(np.where(bad, 0, 255).astype(np.uint8), window=tile.core)
                if sink is not None:
                    sink(tile.core, out)
            done += len(batch)
            if progress:
                progress(done / len(tiles), f"segmenting: window {done}/{len(tiles)}")
        dst.descriptions = PROB_BANDS
        dst.scales = (1 / 255,) * len(PROB_BANDS)
        dst.update_tags(
            scene_key=scene.scene_key,
            model=model.name,
            model_version=model.version,
            classes="background,pit,pond",
            encoding="probability = value / 255",
        )
