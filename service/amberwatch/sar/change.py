"""SAR change between two dates: the log-ratio of Lee-filtered backscatter, ``LR = 10 log10(I2 / I1)`` dB.

The log-ratio is the standard SAR change detector: speckle is multiplicative, so the ratio (not the difference)
has a distribution that does not depend on the brightness of the surface. A pixel changed when ``|LR|`` exceeds

    threshold = max(MIN_CHANGE_DB, K_SIGMA x 1.4826 x MAD(LR))

over the pair's valid land pixels: the robust spread of LR is the speckle-and-season noise of *this* pair (most of
a scene does not change between two dates), and ``MIN_CHANGE_DB`` keeps a very stable pair from flagging
noise. K_SIGMA and MIN_CHANGE_DB were chosen on the OPERA series (docs/sentinel1.md, ``bench/s1_results.py``): on
its land bursts the robust sigma of LR between consecutive dates is 0.8-1.05 dB, so 3 sigma is 2.5-3.2 dB and the
3 dB floor (a factor of 2 in power) decides; 2-6 % of land pixels then change between dates.

Classes (``CHANGE_CLASSES``): 0 stable, 1 water appeared, 2 water disappeared, 3 backscatter decrease (loss of
vegetation volume: clearing, digging), 4 backscatter increase (rough spoil, new structures). Water appearing or
disappearing wins over the backscatter classes. The decrease test uses VH when the scene has it (volume scattering
is what vegetation loss removes), else VV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

K_SIGMA = 3.0
MIN_CHANGE_DB = 3.0
CHANGE_CLASSES = ("stable", "water_appeared", "water_disappeared", "decrease", "increase")


@dataclass(frozen=True)
class ChangeMap:
    """Per-pixel change classes (uint8, 255 = no data), the log-ratio used and its threshold."""

    classes: NDArray[np.uint8]
    log_ratio_db: NDArray[np.float32]
    threshold_db: float
    polarisation: str

    def fraction(self, name: str) -> float:
        valid = self.classes != 255
        return float((self.classes[valid] == CHANGE_CLASSES.index(name)).mean()) if valid.any() else 0.0


def log_ratio_db(before_db: NDArray, after_db: NDArray) -> NDArray[np.float32]:
    """LR in dB from two dB images (``after - before``; NaN where either is missing)."""
    return (np.asarray(after_db, dtype=np.float32) - np.asarray(before_db, dtype=np.float32)).astype(np.float32)


def change_threshold(lr: NDArray, exclude: NDArray[np.bool_] | None = None) -> float:
    """max(MIN_CHANGE_DB, K_SIGMA x robust sigma of LR) over the valid pixels not in ``exclude`` (e.g. water)."""
    values = lr[np.isfinite(lr)] if exclude is None else lr[np.isfinite(lr) & ~exclude]
    if values.size == 0:
        return MIN_CHANGE_DB
    sigma = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return max(MIN_CHANGE_DB, K_SIGMA * sigma)


def change_map(before_db: Mapping[str, NDArray], after_db: Mapping[str, NDArray],
               water_before: NDArray[np.bool_], water_after: NDArray[np.bool_]) -> ChangeMap:
    """The change classes between two co-registered dates (dB images per polarisation, water masks of each)."""
    pol = "VH" if "VH" in before_db and "VH" in after_db else "VV"
    if pol not in before_db or pol not in after_db:
        raise ValueError("both dates need VV or VH")
    lr = log_ratio_db(before_db[pol], after_db[pol])
    either_water = water_before | water_after
    threshold = change_threshold(lr, either_water)
    classes = np.zeros(lr.shape, dtype=np.uint8)
    classes[lr <= -threshold] = 3
    classes[lr >= threshold] = 4
    classes[water_after & ~water_before] = 1
    classes[water_before & ~water_after] = 2
    classes[~np.isfinite(lr)] = 255
    return ChangeMap(classes, lr, threshold, pol)
