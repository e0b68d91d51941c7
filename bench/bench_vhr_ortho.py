"""Benchmark VHR detection on a georeferenced RGB orthomosaic: km²/min of tile -> SLIC -> classify -> vectorise.

The mosaic is SYNTHETIC, assembled from REAL imagery: Texty's 6 whole example tiles (Bing, ~0.37 m; internal
data, read from ../shared/data and written only to a temporary folder), each in a random rotation/mirror,
resampled to ``--gsd`` (default 0.4 m) and laid out ``--rows`` x ``--cols`` on a UTM 35N grid. It times
``amberwatch.vhr.detect_vhr`` (the part of ``amberwatch detect ortho.tif`` that depends on the image size:
windowed reads, SLIC, the ONNX classifier with 8-view TTA, for 2.2.0 the hand-made features of the superpixels
inside its cascade band, polygons); ingest, database insert and publishing are
not included.

    nice -n 10 .venv/bin/python bench/bench_vhr_ortho.py [--rows 3 --cols 3]

onnxruntime uses every core (2 here); the SLIC segmentation runs on one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "service"), str(ROOT / "models")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--gsd", type=float, default=0.4, help="mosaic ground resolution, m/px")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: newest vhr-texty)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "vhr" / "texty-chips")
    a = ap.parse_args()

    from shapely.geometry import box

    from amberwatch.settings import Settings
    from amberwatch.types import IngestedScene
    from amberwatch.vhr import detect_vhr
    from amberwatch.vhr.model import default_model_dir
    from amberwatch_training.vhr.mosaic import example_mosaic

    if not (a.data / "example-tiles").is_dir():
        sys.exit(f"texty-chips example tiles not found under {a.data}")
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-vhr-")))
    model_dir = a.model or default_model_dir(settings.models_dir)
    with tempfile.TemporaryDirectory(prefix="bench-vhr-ortho-") as tmp:
        path = example_mosaic(a.data, Path(tmp) / "ortho.tif", a.rows, a.cols, a.gsd)
        import rasterio

        with rasterio.open(path) as ds:
            w, h, b = ds.width, ds.height, ds.bounds
        km2 = w * h * a.gsd * a.gsd / 1e6
        scene = IngestedScene(
            scene_key="bench_ortho", sensor="vhr_rgb", family="vhr_rgb", level="RGB",
            acquired=datetime(2015, 5, 23, tzinfo=UTC), bands=["red", "green", "blue"], resolution=a.gsd,
            crs="EPSG:32635", bounds=(b.left, b.bottom, b.right, b.top), footprint_wgs84=box(0, 0, 1, 1),
            reflectance_path=path, cloud_mask_path=None, source=str(path))
        from amberwatch.vhr.model import load_vhr_model

        model = load_vhr_model(model_dir, settings.providers)  # the cached instance detect_vhr uses
        model.score_many([np.zeros((230, 230, 3), np.uint8)])  # warm-up
        counts = dict(model.counts)
        t0, c0 = time.perf_counter(), time.process_time()
        res = detect_vhr(scene, model_dir, settings)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        featured = model.counts["featured"] - counts["featured"]  # 2.2.0's cascade: chips given hand features
    out = {
        "mosaic": f"{w} x {h} px at {a.gsd} m ({a.rows} x {a.cols} real example tiles, synthetic layout)",
        "km2": round(km2, 3), "seconds": round(dt, 2), "km2_per_min": round(km2 / dt * 60, 3),
        "cpu_seconds": round(cpu, 2), "cpu_share": round(cpu / dt, 2),
        "tiles": res.parameters["tiles"], "superpixels": res.parameters["superpixels_scored"],
        "tiles_flagged": res.parameters["tiles_flagged"], "polygons": len(res.polygons),
        "superpixels_featured": featured,
        "featured_share": round(featured / max(1, res.parameters["superpixels_scored"]), 3),
        "model": f"{res.model_name} {res.model_version}", "provider": res.provider,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))
    print(f"{km2:.2f} km² in {dt:.1f} s wall ({cpu:.1f} s CPU, load {out['load_avg_1m']}): "
          f"{out['km2_per_min']:.2f} km²/min at {a.gsd} m", file=sys.stderr)


if __name__ == "__main__":
    main()
