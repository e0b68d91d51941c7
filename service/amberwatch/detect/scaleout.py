"""Detection of a scene (or many) on a Dask cluster: tiles of windows on the workers, merged on the driver.

The scene is cut into square *tiles* of whole inference windows (``settings.dask_tile_size`` pixels, rounded up to
a multiple of the window). Each tile is one Dask task (:func:`tile_regions`): the worker opens the reflectance
and cloud mask COGs itself, reads only its windows (each with the context margin, exactly as the single-process
window loop does), runs the model (one onnxruntime session per worker process, CUDA when the worker has it) and
turns the tile's pit/pond probabilities into vector regions with :func:`~amberwatch.detect.vectorize.block_regions`.
Only regions travel back. The driver unions the regions cut by tile edges with
:func:`~amberwatch.detect.vectorize.merge_partials` and finishes them with
:func:`~amberwatch.detect.vectorize.regions_to_polygons`: the same code as ``vectorize`` on the probability COG, so
the polygons are those of :func:`amberwatch.detect.detect_scene` (tests/test_scaleout.py).

Workers must see the scene files at the same paths as the driver (a shared volume on a real cluster).
No probability COG is written on this path (``DetectionResult.probability_path`` is None).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.windows import Window

from amberwatch.detect.clearsky import clear_sky_footprint
from amberwatch.detect.decision import DecisionRule
from amberwatch.detect.registry import ModelInfo
from amberwatch.detect.segment import (
    PROB_BANDS,
    Progress,
    Tile,
    WindowReader,
    band_indexes,
    batched,
    cached_runner,
    check_model_io,
    check_segmentation_model,
    context_margin,
    model_input_size,
    open_cloud_mask,
    plan_tiles,
    predict_batch,
    result_parameters,
    scene_band_names,
)
from amberwatch.detect.session import usable_cores
from amberwatch.detect.vectorize import Region, block_regions, merge_partials, prefilter_pixels, regions_to_polygons
from amberwatch.errors import AmberWatchError, InputError
from amberwatch.settings import Settings
from amberwatch.types import DetectionResult, IngestedScene

log = logging.getLogger(__name__)

MAX_LOCAL_WORKERS = 64
WAIT_FOR_WORKERS_S = 60


@dataclass(frozen=True)
class TileJob:
    """What one worker needs for one tile: the scene files, the model, the tile's windows, the rule."""

    scene: IngestedScene
    model: ModelInfo
    block: Window  # the tile, in raster pixels
    windows: tuple[Tile, ...]  # its inference windows (cores inside ``block``), planned on the whole raster
    input_size: int
    shape: tuple[int, int]  # (height, width) of the whole raster
    rule: DecisionRule
    min_pixels: int
    providers: tuple[str, ...] | None
    threads: int | None  # onnxruntime intra-op threads per worker process (None = every core)


@dataclass(frozen=True)
class TileResult:
    block: Window
    complete: list[Region]  # regions of objects inside the tile, already judged by the rule
    partial: list[Region]  # regions of objects touching an inner tile edge: judged after merging
    provider: str  # the onnxruntime provider that ran the tile
    worker: str  # the Dask worker's address


def tile_regions(job: TileJob) -> TileResult:
    """On a worker: read the tile's windows, run the model, vectorize the tile (no database, no driver state)."""
    model, scene = job.model, job.scene
    runner = cached_runner(str(model.onnx_path), model.sha256, job.providers, job.threads)
    check_model_io(runner, model, len(model.input_bands))
    probs = np.zeros((len(PROB_BANDS), job.block.height, job.block.width), np.uint8)
    with ExitStack() as stack:
        src = stack.enter_context(rasterio.open(scene.reflectance_path))
        indexes = band_indexes(scene_band_names(src.descriptions, scene), model.input_bands, model.ref,
                               scene.scene_key)
        reader = WindowReader(src, indexes, open_cloud_mask(stack, scene, src))
        for batch in batched(list(job.windows), runner.batch_size):
            x, unusable = reader.read_batch(batch)
            for tile, out in zip(batch, predict_batch(runner, model, batch, x, unusable, job.input_size),
                                 strict=True):
                r, c = tile.core.row_off - job.block.row_off, tile.core.col_off - job.block.col_off
                probs[:, r : r + tile.core.height, c : c + tile.core.width] = out
    complete, partial = block_regions(probs, job.block, job.shape, job.rule, job.min_pixels)
    return TileResult(job.block, complete, partial, runner.provider, worker_address())


def worker_address() -> str:
    """The address of the Dask worker running this task ("local" outside a worker)."""
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:
        return "local"


def plan_jobs(scene: IngestedScene, model: ModelInfo, settings: Settings, rule: DecisionRule,
              threads: int | None = None) -> tuple[list[TileJob], CRS, rasterio.Affine]:
    """Cut the scene into tile jobs (the windows and margins of the single-process loop); checks bands first."""
    margin = context_margin(model)
    with rasterio.open(scene.reflectance_path) as src:
        band_indexes(scene_band_names(src.descriptions, scene), model.input_bands, model.ref, scene.scene_key)
        width, height, transform = src.width, src.height, src.transform
        crs = CRS.from_user_input(src.crs.to_wkt() if src.crs else scene.crs)
    size = max(1, min(settings.window_size, max(width, height)))
    input_size = model_input_size(size, margin, model.input_multiple)
    windows = plan_tiles(width, height, size, margin, input_size)
    tile = math.ceil(max(settings.dask_tile_size, size) / size) * size  # whole windows per tile
    min_pixels = prefilter_pixels(crs, transform, settings.min_mapping_unit_ha)
    providers = tuple(settings.providers) if settings.providers else None
    jobs = []
    for row in range(0, height, tile):
        for col in range(0, width, tile):
            block = Window(col, row, min(tile, width - col), min(tile, height - row))
            inside = tuple(w for w in windows
                           if row <= w.core.row_off < row + tile and col <= w.core.col_off < col + tile)
            jobs.append(TileJob(scene, model, block, inside, input_size, (height, width), rule, min_pixels,
                                providers, threads))
    return jobs, crs, transform


def detect_scene_dask(
    scene: IngestedScene,
    model: ModelInfo,
    settings: Settings,
    client,  # distributed.Client
    progress: Progress | None = None,
    rule: DecisionRule | None = None,
    threads: int | None = None,
) -> DetectionResult:
    """:func:`amberwatch.detect.detect_scene` with the tiles computed on the Dask cluster of ``client``."""
    from distributed import as_completed

    check_segmentation_model(model, scene, "it does not run on Dask tiles")
    rule = rule or model.decision
    jobs, crs, transform = plan_jobs(scene, model, settings, rule, threads)
    log.info("detecting %s with %s on Dask: %d tiles of up to %d windows", scene.scene_key, model.ref, len(jobs),
             max(len(j.windows) for j in jobs))
    futures = client.map(tile_regions, jobs, pure=False)
    order = {f.key: i for i, f in enumerate(futures)}
    results: list[TileResult | None] = [None] * len(jobs)
    for n, future in enumerate(as_completed(futures), start=1):
        results[order[future.key]] = future.result()
        if progress:
            progress(0.9 * n / len(jobs), f"tiles: {n}/{len(jobs)} done")
    done = [r for r in results if r is not None]
    complete = [region for r in done for region in r.complete]  # tile (block) order, as vectorize reads blocks
    partial = [region for r in done for region in r.partial]
    polygons = regions_to_polygons(complete + merge_partials(partial, rule), crs, transform,
                                   settings.min_mapping_unit_ha)
    clear_sky = clear_sky_footprint(scene.cloud_mask_path)
    providers = sorted({r.provider for r in done})
    # logged here: the workers' own logs may be quiet
    for (worker, provider), n in sorted(Counter((r.worker, r.provider) for r in done).items()):
        log.info("Dask worker %s ran %d tile(s) on onnxruntime %s", worker, n, provider)
    if progress:
        progress(1.0, f"{len(polygons)} polygons")
    return DetectionResult(
        scene_key=scene.scene_key,
        model_name=model.name,
        model_version=model.version,
        observed_at=scene.acquired,
        polygons=polygons,
        probability_path=None,
        provider=",".join(providers),
        clear_sky=clear_sky,
        parameters={**result_parameters(rule, settings, model), "executor": "dask", "dask_tiles": len(jobs)},
    )


@dataclass(frozen=True)
class Cluster:
    """A connected Dask client and what the tiles should know about the workers."""

    client: object  # distributed.Client
    n_workers: int
    threads: int | None  # onnxruntime threads per worker process (local cluster: the cores shared out)
    address: str


@contextmanager
def dask_cluster(scheduler: str | None, n_workers: int, connect_timeout_s: float = 30) -> Iterator[Cluster]:
    """A client of the scheduler at ``scheduler`` (``tcp://host:8786``), else of a LocalCluster of ``n_workers``
    worker processes (one thread each, onnxruntime threads = usable cores / workers) closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as err:
            raise AmberWatchError(f"cannot reach the Dask scheduler {scheduler}: {type(err).__name__}") from err
        with client:
            try:
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
            except TimeoutError as err:
                raise AmberWatchError(f"the Dask scheduler {scheduler} has no worker (waited "
                                      f"{WAIT_FOR_WORKERS_S} s)") from err
            workers = len(client.scheduler_info().get("workers", {}))
            log.info("Dask: scheduler %s with %d worker(s)", scheduler, workers)
            yield Cluster(client, workers, None, scheduler)
        return
    cores = usable_cores()  # the same count a single-process session sizes its threads by
    if not 1 <= n_workers <= min(MAX_LOCAL_WORKERS, cores):
        raise InputError(f"workers must be between 1 and {min(MAX_LOCAL_WORKERS, cores)} (the cores of this "
                         f"machine) for a local Dask cluster, got {n_workers}")
    threads = max(1, cores // n_workers)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        log.info("Dask: local cluster of %d worker process(es), %d onnxruntime thread(s) each", n_workers, threads)
        yield Cluster(client, n_workers, threads, cluster.scheduler_address)


def scene_area_km2(scene: IngestedScene) -> float:
    """The scene's raster area in km² (width x height x pixel area), what the throughput is measured on."""
    with rasterio.open(Path(scene.reflectance_path)) as src:
        return src.width * src.height * abs(src.transform.a * src.transform.e) / 1e6
