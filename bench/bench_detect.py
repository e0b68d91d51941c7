"""Whole-process benchmark of ``amberwatch detect``: ingest (COGs + cloud mask) -> inference -> vectorize -> store
(COPY) -> track -> publish, on a large scene built from real Sentinel-2 pixels, beside the time of merely reading the
bands and the model's own inference time, with peak RSS.

Scene: the demo scene (real Copernicus Sentinel-2 L1C pixels of T33UUU, 768 x 768 px, 13 bands, with simulated
mining sites) mirror-tiled to ``--size`` x ``--size`` px (default 4608 = 6 x 6 copies, 2,123 km²; ``--full-tile``:
10980 px, a whole Sentinel-2 tile, 12,056 km²). Mirror tiling keeps every seam continuous. The L1C scene gets the
cloud mask ``amberwatch detect`` gives it (``--l1c-cloud-mask``, default the service's: spectral). The scene file
is cached in ``--scene-dir``.

Printed (same run, same scene, page cache warm for all):
- reading the bands: every band of the input GeoTIFF decoded window by window (the floor of any ingest);
- the model alone: onnxruntime on real model inputs of the ingested scene, per window, times the windows run;
- the whole process (a fresh embedded PostGIS; its start is printed apart), its stages (wall and CPU seconds, the
  peak RSS reached by the end of each), km²/h and peak RSS (``getrusage`` of this process; PostgreSQL runs in its
  own processes);
- the whole process without the model's own time (the part a GPU cannot remove) against reading the bands.
``--profile out.prof`` also writes a cProfile of the whole process (read it with ``python -m pstats``).

    .venv/bin/python bench/bench_detect.py [--size 4608 | --full-tile] [--window 512] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import resource
import subprocess
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from amberwatch.demo import demo_scene_path
from amberwatch.settings import Settings
from amberwatch.types import IngestedScene

FULL_TILE = 10980
BENCH_CACHE_BYTES = 64 << 20  # GDAL cache while building the scene and reading its bands


def mirror_index(n: int, period: int) -> np.ndarray:
    """Source index of each of ``n`` output rows/cols when mirror-tiling an axis of ``period`` (0..p-1, p-1..0...)."""
    i = np.arange(n) % (2 * period)
    return np.where(i < period, i, 2 * period - 1 - i)


def build_scene(src_path: Path, dst_path: Path, size: int, block: int = 512) -> None:
    """Mirror-tile ``src_path`` to ``size`` x ``size`` px (same origin and pixel size, same tags), window by window."""
    tmp = dst_path.with_suffix(".part")
    with rasterio.open(src_path) as src:
        data = src.read()
        profile = src.profile | {"driver": "GTiff", "width": size, "height": size, "tiled": True, "blockxsize": block,
                                 "blockysize": block, "compress": "deflate", "predictor": 2, "BIGTIFF": "IF_SAFER"}
        rows, cols = mirror_index(size, src.height), mirror_index(size, src.width)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
            for r in range(0, size, block):
                h = min(block, size - r)
                strip = data[:, rows[r : r + h]]
                for c in range(0, size, block):
                    w = min(block, size - c)
                    dst.write(strip[:, :, cols[c : c + w]], window=Window(c, r, w, h))
    tmp.rename(dst_path)


def read_bands(path: Path, block: int = 512) -> float:
    """Seconds to decode every band of ``path``, block row by block row."""
    t0 = time.perf_counter()
    with rasterio.open(path) as src:
        for r in range(0, src.height, block):
            src.read(window=Window(0, r, src.width, min(block, src.height - r)))
    return time.perf_counter() - t0


def model_seconds(scene: IngestedScene, settings: Settings, reps: int) -> tuple[float, int, str]:
    """The model's own time on the scene: per-window inference on real inputs (``reps`` windows spread over the
    scene, after a warm-up) times the windows the pipeline runs (not all-cloud/nodata). (seconds, windows, ref)."""
    from amberwatch.detect.registry import get_model
    from amberwatch.detect.segment import (
        WindowReader,
        band_indexes,
        cached_runner,
        context_margin,
        model_input_size,
        plan_tiles,
        scene_band_names,
    )
    model = get_model(settings.models_dir, None, "sentinel2", settings.default_models)
    providers = tuple(settings.providers) if settings.providers else None
    runner = cached_runner(str(model.onnx_path), model.sha256, providers)
    margin = context_margin(model)
    cloud = scene.cloud_mask_path
    with rasterio.open(scene.reflectance_path) as src, (rasterio.open(cloud) if cloud else nullcontext()) as cm:
        size = min(settings.window_size, max(src.width, src.height))
        input_size = model_input_size(size, margin, model.input_multiple)
        tiles = plan_tiles(src.width, src.height, size, margin, input_size)
        names = scene_band_names(src.descriptions, scene)
        reader = WindowReader(src, band_indexes(names, model.input_bands, model.ref, "bench"), cm)
        run = []
        for t in tiles:
            _, bad = reader.read(t)
            run.append(not bad.all())
        picks = [t for t, ok in zip(tiles, run, strict=True) if ok]
        picks = picks[:: max(1, len(picks) // reps)][:reps] or tiles[:1]
        inputs = [reader.read(t)[0][None] for t in picks]
    runner(inputs[0])  # warm-up
    t0 = time.perf_counter()
    for x in inputs:
        runner(x)
    per_window = (time.perf_counter() - t0) / len(inputs)
    return per_window * sum(run), sum(run), f"{model.ref} on {runner.provider}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """CPU seconds of this process so far, all its threads (PostgreSQL runs in its own processes: not counted)."""
    t = os.times()
    return t.user + t.system


class Stages:
    """Wall and CPU time of each stage, from the progress messages of ingest and of the run. On a shared machine
    the CPU seconds move less with the load than the wall time."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float, float]] = []

    def __call__(self, fraction: float, message: str) -> None:
        stage = message.split(":")[0].split(",")[0].split(" block")[0].strip()
        stage = " ".join(w for w in stage.split() if not w[0].isdigit())
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.perf_counter(), cpu_seconds(), peak_rss_mb()))

    def durations(self, end: float, end_cpu: float, end_rss: float) -> list[tuple[str, float, float, float]]:
        """(stage, wall s, CPU s, peak RSS of the process by the end of the stage in MB)."""
        out: dict[str, tuple[float, float, float]] = {}
        ends = [*self.marks[1:], ("", end, end_cpu, end_rss)]
        for (name, t, c, _), (_, t_next, c_next, rss_next) in zip(self.marks, ends, strict=True):
            wall, cpu, _ = out.get(name, (0.0, 0.0, 0.0))
            out[name] = (wall + t_next - t, cpu + c_next - c, rss_next)
        return [(name, wall, cpu, rss) for name, (wall, cpu, rss) in out.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4608, help="scene side in px (default 4608: 2,123 km²)")
    ap.add_argument("--full-tile", action="store_true", help=f"a full Sentinel-2 tile: {FULL_TILE} x {FULL_TILE} px")
    ap.add_argument("--window", type=int, default=512, help="inference window (px)")
    ap.add_argument("--model-reps", type=int, default=16, help="windows timed for the model's own time")
    ap.add_argument("--scene-dir", type=Path, default=Path(tempfile.gettempdir()) / "amberwatch-bench-detect")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the whole process here")
    ap.add_argument("--port", type=int, default=54398, help="port of the bench's embedded PostGIS")
    ap.add_argument("--l1c-cloud-mask", choices=["spectral", "s2cloudless"], default="spectral",
                    help="the L1C cloud mask (AMBERWATCH_L1C_CLOUD_MASK; default spectral, as the service)")
    args = ap.parse_args()
    size = FULL_TILE if args.full_tile else args.size
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("amberwatch.detect.session").setLevel(logging.INFO)  # the provider line

    args.scene_dir.mkdir(parents=True, exist_ok=True)
    scene_path = args.scene_dir / f"S2_L1C_T33UUU_20170216T102101_bench_{size}.tif"
    with rasterio.Env(GDAL_CACHEMAX=BENCH_CACHE_BYTES):  # GDAL's default cache (5 % of RAM) would count in the RSS
        if not scene_path.exists():
            t = time.perf_counter()
            build_scene(demo_scene_path(), scene_path, size)
            print(f"built {scene_path} in {time.perf_counter() - t:.1f} s")
        t_read = read_bands(scene_path)

    from amberwatch.store.db import Store
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.usecases import scenes as scenes_uc

    with tempfile.TemporaryDirectory(prefix="amberwatch-bench-detect-") as tmp:
        os.chmod(tmp, 0o755)
        settings = Settings(data_dir=Path(tmp), embedded_pg_port=args.port, window_size=args.window,
                            l1c_cloud_mask=args.l1c_cloud_mask)
        t0 = time.perf_counter()
        store = Store(settings).start()
        t_db = time.perf_counter() - t0
        try:
            stages = Stages()
            profiler = cProfile.Profile() if args.profile else None
            rss0 = peak_rss_mb()
            cpu0 = cpu_seconds()
            t0 = time.perf_counter()
            if profiler:
                profiler.enable()
            scene = scenes_uc.ingest(store, settings, scene_path, progress=lambda f, m: stages(f, "ingest " + m))
            run = runs_uc.detect(store, settings, scene, progress=stages)
            if profiler:
                profiler.disable()
            t_total = time.perf_counter() - t0
            cpu_end = cpu_seconds()
            rss = peak_rss_mb()
            if profiler:
                profiler.dump_stats(args.profile)
            from amberwatch.usecases.scenes import scene_from_row

            ing = scene_from_row(scene)
            t_model, n_windows, model_ref = model_seconds(ing, settings, args.model_reps)
        finally:
            store.stop()

    km2 = size * size * 100 / 1e6
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nscene: {scene_path.name}: {size} x {size} px at 10 m = {km2:,.0f} km², window {args.window} px, "
          f"{os.cpu_count()} cores; {args.l1c_cloud_mask} cloud mask; model {model_ref}; "
          f"run {run.id}: {run.n_detections} detections ({run.state})")
    print(f"load: {load}")
    print(f"embedded PostGIS start (not counted): {t_db:.1f} s\n")
    print("| stage | wall s | cpu s | peak RSS by its end, MB |")
    print("|---|---:|---:|---:|")
    for name, dt, cpu, peak in stages.durations(t0 + t_total, cpu_end, rss):
        print(f"| {name} | {dt:.1f} | {cpu:.1f} | {peak:.0f} |")
    print("\n| measure | s | km²/h | x reading |")
    print("|---|---:|---:|---:|")
    print(f"| reading the bands | {t_read:.1f} | {km2 / t_read * 3600:,.0f} | 1.0 |")
    print(f"| model alone ({n_windows} windows) | {t_model:.1f} | {km2 / t_model * 3600:,.0f} "
          f"| {t_model / t_read:.1f} |")
    print(f"| whole process | {t_total:.1f} | {km2 / t_total * 3600:,.0f} | {t_total / t_read:.1f} |")
    print(f"\npipeline around the model: +{(t_total - t_model) / t_model * 100:.0f} % of the model's time "
          f"(target <= 30 %)")
    print(f"without the model's own time (what a GPU cannot remove): {t_total - t_model:.1f} s = "
          f"{(t_total - t_model) / t_read:.1f} x reading the bands (GPU target: whole process <= 3 x)")
    print(f"CPU of this process: {cpu_end - cpu0:.1f} s over {t_total:.1f} s wall "
          f"({(cpu_end - cpu0) / t_total:.2f} cores busy; PostgreSQL not counted)")
    print(f"peak RSS of this process: {rss:.0f} MB (before the run {rss0:.0f} MB; target <= 2048 MB on a full tile)")


if __name__ == "__main__":
    main()
