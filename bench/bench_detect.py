"""Benchmark the detection runtime on a synthetic full Sentinel-2 tile (10980 x 10980 px, 13 bands, 10 m).

The scene (reflectance COG + cloud mask COG) is generated window by window in a child process and kept in
``--scene-dir`` for later runs. Then predict_probabilities + vectorize run on it and the script prints
wall time, pixels/s, km²/h and the peak RSS of this process (the generator's memory is not counted).

Model: ``--model name[@version]`` from ``--registry`` (default: s2-unet when registered), else a tiny
per-pixel ONNX model built here (then the figures measure the runtime's own overhead, not a real network);
``--untrained-unet`` times the S2 U-Net architecture with random weights (needs torch + amberwatch_training).

    PYTHONPATH=service .venv/bin/python bench/bench_detect.py [--size 10980] [--window 512]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin
from rasterio.windows import Window
from tqdm import tqdm

from amberwatch.detect.registry import get_model, list_models, load_model
from amberwatch.detect.segment import predict_probabilities
from amberwatch.detect.vectorize import vectorize
from amberwatch.settings import PROJECT_ROOT, Settings
from amberwatch.types import SENTINEL2_BANDS, IngestedScene

CRS = "EPSG:32635"
X0, Y0, RES = 300_000.0, 5_700_000.0, 10.0
STEP = 400  # one planted feature per STEP x STEP cell
CLOUD = (2000, 2000, 1500)  # row, col, size of a cloud block


def planted(size: int) -> list[tuple[int, int, int, str]]:
    """Deterministic squares (row, col, side, kind), many of them straddling 512-px window borders."""
    rng = np.random.default_rng(42)
    out = []
    for i, row in enumerate(range(100, size - 100, STEP)):
        for j, col in enumerate(range(100, size - 100, STEP)):
            side = int(rng.integers(6, 40))
            r, c = row + int(rng.integers(0, STEP - 50)), col + int(rng.integers(0, STEP - 50))
            out.append((r, c, side, "pit" if (i + j) % 2 else "pond"))
    return out


def write_scene(scene_dir: str, size: int) -> None:
    """Child process: write the reflectance and cloud COGs by 512-px windows."""
    scene_dir_p = Path(scene_dir)
    squares = planted(size)
    tmp = scene_dir_p / "refl.tmp.tif"
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=len(SENTINEL2_BANDS),
        dtype="uint16",
        crs=CRS,
        transform=from_origin(X0, Y0, RES, RES),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        BIGTIFF="YES",
    )
    base = np.array(
        [1200 if b in ("nir", "nir08", "rededge3") else 1500 if b == "swir16" else 600 for b in SENTINEL2_BANDS],
        np.float32,
    )[:, None, None]
    rng = np.random.default_rng(0)
    swir, nir = SENTINEL2_BANDS.index("swir16"), SENTINEL2_BANDS.index("nir")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.descriptions = SENTINEL2_BANDS
        for row in tqdm(range(0, size, 512), desc="scene rows"):
            for col in range(0, size, 512):
                h, w = min(512, size - row), min(512, size - col)
                yy, xx = np.mgrid[row : row + h, col : col + w].astype(np.float32)
                field = 1.0 + 0.3 * np.sin(xx / 700.0) * np.cos(yy / 900.0)
                data = base * field * 1.0 + rng.normal(0, 40, (len(SENTINEL2_BANDS), h, w)).astype(np.float32)
                data[nir] += 1800 * field  # vegetated land: nir ~ 0.3
                for r, c, s, kind in squares:
                    r0, r1, c0, c1 = max(r, row), min(r + s, row + h), max(c, col), min(c + s, col + w)
                    if r0 < r1 and c0 < c1:
                        band, value = (swir, 4500) if kind == "pit" else (nir, 300)
                        data[band, r0 - row : r1 - row, c0 - col : c1 - col] = value
                if row + h > size - 300 and col < 3000:
                    data[:, max(size - 300 - row, 0) :, : min(3000 - col, w)] = 0  # a nodata corner
                dst.write(np.clip(data, 0, 65535).astype(np.uint16), window=Window(col, row, w, h))
    rasterio.shutil.copy(
        tmp,
        scene_dir_p / "refl.tif",
        driver="COG",
        COMPRESS="DEFLATE",
        PREDICTOR="2",
        BIGTIFF="YES",
        OVERVIEWS="NONE",
        NUM_THREADS="ALL_CPUS",
    )
    tmp.unlink()
    with rasterio.open(
        scene_dir_p / "cloud.tmp.tif",
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs=CRS,
        transform=from_origin(X0, Y0, RES, RES),
        tiled=True,
    ) as dst:
        r, c, s = CLOUD
        for row in range(0, size, 512):
            h = min(512, size - row)
            block = np.zeros((h, size), np.uint8)
            r0, r1 = max(r, row), min(r + s, row + h)
            if r0 < r1:
                block[r0 - row : r1 - row, c : c + s] = 1
            dst.write(block, 1, window=Window(0, row, size, h))
    rasterio.shutil.copy(scene_dir_p / "cloud.tmp.tif", scene_dir_p / "cloud.tif", driver="COG", COMPRESS="DEFLATE")
    (scene_dir_p / "cloud.tmp.tif").unlink()
    (scene_dir_p / "done.json").write_text(json.dumps({"size": size}))


def tiny_model(models_dir: Path) -> Path:
    """Register the per-pixel test model (bright swir16 -> pit, dark nir -> pond) in ``models_dir``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bands = ["blue", "green", "red", "nir", "swir16"]
    w = np.zeros((3, len(bands), 1, 1), np.float32)
    b = np.zeros(3, np.float32)
    w[1, 4], b[1] = 50.0, -15.0
    w[2, 3], b[2] = -50.0, 8.25
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["reflectance", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("reflectance", TensorProto.FLOAT, ["N", len(bands), "H", "W"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    d = models_dir / "bench-tiny" / "0.0.1"
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(model, d / "model.onnx")
    card = {
        "properties": {
            "mlm:name": "bench-tiny",
            "amberwatch:version": "0.0.1",
            "amberwatch:family": "sentinel2",
            "amberwatch:input_multiple": 16,
            "mlm:input": [{"bands": bands}],
        }
    }
    (d / "mlm.json").write_text(json.dumps(card))
    return d


def untrained_unet(models_dir: Path) -> Path:
    """Register the S2 CompactUNet architecture with random weights (realistic compute, meaningless output)."""
    import torch

    from amberwatch_training.export import export_onnx
    from amberwatch_training.model import CompactUNet
    from amberwatch_training.scenes import S2_MODEL_BANDS

    torch.manual_seed(0)
    net = CompactUNet(len(S2_MODEL_BANDS), base=16, levels=3, separable_from=0)
    d = models_dir / "bench-unet-untrained" / "0.0.1"
    d.mkdir(parents=True, exist_ok=True)
    export_onnx(net, d / "model.onnx", len(S2_MODEL_BANDS))
    card = {
        "properties": {
            "mlm:name": "bench-unet-untrained",
            "amberwatch:version": "0.0.1",
            "amberwatch:family": "sentinel2",
            "amberwatch:input_multiple": 2**net.levels,
            "mlm:input": [{"bands": list(S2_MODEL_BANDS)}],
        }
    }
    (d / "mlm.json").write_text(json.dumps(card))
    return d


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--registry", type=Path, default=PROJECT_ROOT / "models" / "registry")
    ap.add_argument("--model", default=None, help="name[@version]; default s2-unet if registered, else tiny")
    ap.add_argument("--untrained-unet", action="store_true", help="time the S2 U-Net architecture with random weights")
    ap.add_argument("--scene-dir", type=Path, default=Path(tempfile.gettempdir()) / "amberwatch-bench-detect")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    scene_dir = args.scene_dir / str(args.size)
    done = scene_dir / "done.json"
    if not done.exists():
        shutil.rmtree(scene_dir, ignore_errors=True)
        scene_dir.mkdir(parents=True)
        t = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=write_scene, args=(str(scene_dir), args.size))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"scene generation failed (exit {child.exitcode})")
        print(f"generated scene in {time.perf_counter() - t:.1f} s -> {scene_dir}")

    registered = {m.name for m in list_models(args.registry)}
    name = args.model or ("s2-unet" if "s2-unet" in registered else None)
    if args.untrained_unet:  # exported in a child process: torch's memory must not count in the peak RSS
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            model = load_model(pool.apply(untrained_unet, (scene_dir / "registry",)))
    elif name:
        model = get_model(args.registry, name, "sentinel2", {})
    else:
        model = load_model(tiny_model(scene_dir / "registry"))
    print(f"model: {model.ref} ({model.onnx_path}), bands {model.input_bands}")

    size = args.size
    scene = IngestedScene(
        scene_key=f"BENCH_S2_{size}",
        sensor="sentinel2a",
        family="sentinel2",
        level="L2A",
        acquired=datetime(2024, 6, 1, tzinfo=UTC),
        bands=list(SENTINEL2_BANDS),
        resolution=RES,
        crs=CRS,
        bounds=(X0, Y0 - size * RES, X0 + size * RES, Y0),
        footprint_wgs84=None,  # type: ignore[arg-type]
        reflectance_path=scene_dir / "refl.tif",
        cloud_mask_path=scene_dir / "cloud.tif",
        source="synthetic",
    )
    settings = Settings(window_size=args.window, models_dir=args.registry)
    out = scene_dir / "work" / "prob.tif"
    rss0 = peak_rss_mb()
    bar = tqdm(desc="segmenting", total=100, unit="%")

    def progress(fraction: float, message: str) -> None:
        bar.update(round(100 * fraction) - bar.n)

    t0 = time.perf_counter()
    predict_probabilities(scene, model, out, settings, progress=progress)
    t1 = time.perf_counter()
    bar.close()
    rss1 = peak_rss_mb()
    polygons = vectorize(out, CRS, min_area_ha=settings.min_mapping_unit_ha)
    t2 = time.perf_counter()
    rss2 = peak_rss_mb()

    squares = planted(size)
    r, c, s = CLOUD
    visible = [
        q
        for q in squares
        if not (r <= q[0] + q[2] and q[0] < r + s and c <= q[1] + q[2] and q[1] < c + s)
        and not (q[0] + q[2] > size - 300 and q[1] < 3000)
    ]
    pixels = size * size
    km2 = pixels * RES * RES / 1e6
    total = t2 - t0
    print(f"scene: {size} x {size} px = {pixels / 1e6:.1f} Mpx = {km2:.0f} km² at {RES:.0f} m, window {args.window}")
    print(f"predict_probabilities: {t1 - t0:.1f} s  ({pixels / (t1 - t0) / 1e6:.2f} Mpx/s)")
    print(
        f"vectorize:             {t2 - t1:.1f} s  ({len(polygons)} polygons; {len(visible)} planted squares "
        f"outside cloud/nodata, {len(squares)} in all)"
    )
    print(f"total:                 {total:.1f} s  = {pixels / total / 1e6:.2f} Mpx/s = {km2 / total * 3600:.0f} km²/h")
    print(f"peak RSS: before {rss0:.0f} MB, after predict {rss1:.0f} MB, after vectorize {rss2:.0f} MB")


if __name__ == "__main__":
    main()
