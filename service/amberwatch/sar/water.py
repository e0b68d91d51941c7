"""Open water / ponds on Sentinel-1: per-scene thresholds (Otsu) applied by the ``s1-water`` ONNX graph.

Calm water reflects the radar pulse away from the sensor, so ponds are the darkest surfaces of a scene. For each
polarisation, Otsu's threshold (scikit-image) on the Lee-filtered dB values of the scene splits dark from bright;
it is then clamped to ``THRESHOLD_RANGE_DB`` so that a scene without water (Otsu splits land into two) or without
land (Otsu splits the sea) cannot make every field or half the sea "water". A pixel is water when every polarisation
is below its threshold: VH keeps smooth bare sand (dark in VV, less so in VH) out of the water class.

Give ``learn_thresholds`` several arrays (e.g. all bursts of one acquisition) to learn one pair for the whole
acquisition: mixed land and water makes Otsu's two classes the physical ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage.filters import threshold_otsu

from amberwatch.detect.session import create_session
from amberwatch.errors import InputError
from amberwatch.ingest.sentinel1 import S1Scene, power_to_db
from amberwatch.sar.speckle import DEFAULT_ENL, DEFAULT_SIZE, lee_filter

WATER_MODEL = "s1-water"
# Physically plausible limits of an open-water threshold (dB), from C-band literature (calm water VV -18..-25 dB,
# VH -25..-32 dB; vegetated land VV -5..-12, VH -12..-20) and checked on the shared scenes (docs/sentinel1.md).
THRESHOLD_RANGE_DB: dict[str, tuple[float, float]] = {
    "VV": (-24.0, -15.0), "HH": (-24.0, -15.0), "VH": (-32.0, -22.0), "HV": (-32.0, -22.0),
}
MIN_PIXELS = 100  # fewer valid pixels than this: no threshold can be learned


@dataclass(frozen=True)
class WaterThresholds:
    """dB thresholds per polarisation and how each was found ("otsu" or "clamped: otsu=<value>")."""

    db: dict[str, float]
    how: dict[str, str]


def filtered_db(scene: S1Scene, size: int = DEFAULT_SIZE, enl: float = DEFAULT_ENL) -> dict[str, NDArray[np.float32]]:
    """Lee-filtered backscatter of every polarisation of ``scene``, in dB (NaN = no data)."""
    return {pol: power_to_db(lee_filter(band, size, enl)) for pol, band in scene.bands.items()}


def learn_thresholds(db_images: Sequence[Mapping[str, NDArray]]) -> WaterThresholds:
    """Otsu threshold per polarisation over all given images (dB), clamped to THRESHOLD_RANGE_DB."""
    pols = sorted(set.intersection(*(set(d) for d in db_images))) if db_images else []
    if not pols:
        raise InputError("no polarisation common to the Sentinel-1 images: cannot learn water thresholds")
    values: dict[str, float] = {}
    how: dict[str, str] = {}
    for pol in pols:
        pixels = np.concatenate([np.asarray(d[pol], dtype=np.float32).ravel() for d in db_images])
        pixels = pixels[np.isfinite(pixels)]
        if pixels.size < MIN_PIXELS:
            raise InputError(f"{pol}: fewer than {MIN_PIXELS} valid pixels: cannot learn a water threshold")
        otsu = float(threshold_otsu(pixels))
        lo, hi = THRESHOLD_RANGE_DB.get(pol, (-32.0, -15.0))
        values[pol] = float(np.clip(otsu, lo, hi))
        how[pol] = "otsu" if lo <= otsu <= hi else f"clamped: otsu={otsu:.2f}"
    return WaterThresholds(values, how)


class WaterModel:
    """The registered ``s1-water`` ONNX graph on onnxruntime (CUDA when available, else CPU)."""

    def __init__(self, onnx_path: Path, providers: list[str] | None = None) -> None:
        self.session, self.provider = create_session(onnx_path, providers)

    def probability(self, db: Mapping[str, NDArray], thresholds: WaterThresholds) -> NDArray[np.float32]:
        """Water probability [H, W] (NaN where any polarisation has no data)."""
        pols = [p for p in ("VV", "VH", "HH", "HV") if p in db and p in thresholds.db]
        if not pols:
            raise InputError("the thresholds and the image share no polarisation")
        stack = np.stack([np.asarray(db[p], dtype=np.float32) for p in pols])[None]
        thr = np.array([thresholds.db[p] for p in pols], dtype=np.float32)
        out = self.session.run(["water"], {"db": stack, "thresholds": thr})[0]
        return np.asarray(out[0, 0], dtype=np.float32)


def water_mask(probability: NDArray) -> NDArray[np.bool_]:
    """Water where the probability is above 0.5 (= every polarisation below its threshold)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(probability > 0.5)
