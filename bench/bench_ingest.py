"""Ingest benchmark: a full-size synthetic Sentinel-2 L1C tile (10980 x 10980 at 10 m) as a band folder.

Generates 13 uint16 GeoTIFF band files (10/20/60 m sizes, smooth fields + noise + a cloud stripe) in a temp dir,
then runs ``ingest_path`` in a child process and prints its wall time and peak RSS (``resource.getrusage``).

    .venv/bin/python bench/bench_ingest.py [--size 10980] [--workdir /tmp] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

RES = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
BASE = {
    "B01": 1500,
    "B02": 1000,
    "B03": 900,
    "B04": 800,
    "B05": 1200,
    "B06": 2000,
    "B07": 2300,
    "B08": 2600,
    "B8A": 2700,
    "B09": 800,
    "B10": 12,
    "B11": 1800,
    "B12": 1000,
}
ORIGIN = (600000.0, 5700000.0)  # UTM 35N, NW Ukraine


def generate(folder: Path, size10: int, rows: int = 1024) -> None:
    """Write the band files block by block (bounded memory)."""
    rng = np.random.default_rng(0)
    for band, res in RES.items():
        n = size10 * 10 // res
        profile = {
            "driver": "GTiff",
            "width": n,
            "height": n,
            "count": 1,
            "dtype": "uint16",
            "crs": "EPSG:32635",
            "transform": from_origin(*ORIGIN, res, res),
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "DEFLATE",
            "zlevel": 1,
            "predictor": 2,
        }
        x = np.arange(n, dtype=np.float32) * res
        with rasterio.open(folder / f"T35UNR_20230615T093049_{band}.tif", "w", **profile) as ds:
            for row0 in range(0, n, rows):
                h = min(rows, n - row0)
                y = (row0 + np.arange(h, dtype=np.float32))[:, None] * res
                field = BASE[band] * (1 + 0.3 * np.sin(x / 3000.0) * np.cos(y / 2500.0))
                field = field + rng.normal(0, 30, (h, n)).astype(np.float32)
                stripe = np.abs(x[None, :] - y - 3.0 * size10) < 0.3 * size10  # a diagonal cloud stripe
                if band not in ("B10",):
                    field = np.where(stripe, np.maximum(field, 3500), field)
                ds.write(np.clip(field, 1, 65535).astype(np.uint16)[None], window=((row0, row0 + h), (0, n)))


def ingest_child(src: str, out: str) -> None:
    from amberwatch.ingest import ingest_path

    t0 = time.perf_counter()
    scene = ingest_path(Path(src), Path(out))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "scene_key": scene.scene_key, "cloud_fraction": scene.cloud_fraction}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980, help="10 m pixels per side (default: a full tile)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temp dir goes (default: system tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated input and output")
    parser.add_argument("--ingest-child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_child:
        ingest_child(*args.ingest_child)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_", dir=args.workdir))
    try:
        src = tmp / "T35UNR_20230615T093049"
        src.mkdir()
        t0 = time.perf_counter()
        generate(src, args.size)
        gen_s = time.perf_counter() - t0
        in_mb = sum(p.stat().st_size for p in src.iterdir()) / 2**20
        print(f"generated {args.size}x{args.size} band folder ({in_mb:.0f} MiB) in {gen_s:.1f} s", flush=True)
        out = tmp / "scene"
        load = os.getloadavg()
        proc = subprocess.run(
            [sys.executable, __file__, "--ingest-child", str(src), str(out)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.exit(f"ingest failed:\n{proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
        cpu_s = usage.ru_utime + usage.ru_stime
        refl_mib = (out / "reflectance.tif").stat().st_size / 2**20
        mask_mib = (out / "cloud_mask.tif").stat().st_size / 2**20
        mpix = args.size * args.size / 1e6
        print(f"scene {result['scene_key']}: 13 bands, {args.size}x{args.size} px at 10 m")
        print(f"ingest time: {result['seconds']:.1f} s ({mpix / result['seconds']:.2f} Mpx/s)")
        print(f"CPU time (user+sys) of the ingest process: {cpu_s:.1f} s on {os.cpu_count()} cores, "
              f"load average before: {load[0]:.1f}")
        print(f"peak RSS of the ingest process: {peak_mib:.0f} MiB")
        print(
            f"outputs: reflectance.tif {refl_mib:.0f} MiB, cloud_mask.tif {mask_mib:.1f} MiB, "
            f"cloud fraction {result['cloud_fraction']:.3f}"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
