"""Time and peak memory of ingest + detect + publish for the demo scene (embedded PostGIS in a temp dir).

    .venv/bin/python bench/bench_pipeline.py [SCENE]
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from amberwatch.demo import demo_scene_path
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import runs as pipeline
from amberwatch.usecases import scenes as scenes_uc


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    scene_path = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_scene_path()
    with tempfile.TemporaryDirectory(prefix="amberwatch-bench-") as tmp:
        os.chmod(tmp, 0o755)
        settings = Settings(data_dir=Path(tmp), embedded_pg_port=54399)
        t0 = time.perf_counter()
        store = Store(settings).start()
        t_db = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            scene = scenes_uc.ingest(store, settings, scene_path)
            t_ingest = time.perf_counter() - t0
            rss_ingest = peak_rss_mb()
            import rasterio

            with rasterio.open(scene.reflectance_path) as ds:
                width, height = ds.width, ds.height
            times: dict[str, float] = {}
            t0 = time.perf_counter()
            run = pipeline.create_run(store, settings, scene)

            def progress(fraction: float, message: str) -> None:
                if fraction >= 0.92 and "detect" not in times:
                    times["detect"] = time.perf_counter() - t0

            run = pipeline.execute_run(store, settings, run.id, progress)
            t_total = time.perf_counter() - t0
            t_detect = times.get("detect", t_total)
            area_km2 = width * height * scene.resolution**2 / 1e6
            print(f"scene: {scene.scene_key}  {width}x{height} px at {scene.resolution:g} m = {area_km2:.1f} km²")
            print(f"embedded PostGIS start (incl. initdb + migrations): {t_db:8.2f} s")
            print(f"ingest:                                            {t_ingest:8.2f} s")
            print(f"detect ({run.provider}):                  {t_detect:8.2f} s "
                  f"({width * height / t_detect:,.0f} px/s, {area_km2 / t_detect * 3600:,.0f} km²/h)")
            print(f"store + track + publish:                           {t_total - t_detect:8.2f} s "
                  f"({run.n_detections} detections)")
            print(f"peak RSS after ingest: {rss_ingest:.0f} MB, overall: {peak_rss_mb():.0f} MB")
        finally:
            store.stop()


if __name__ == "__main__":
    main()
