"""Cloud/shadow masks from Sentinel-2 SCL, Landsat QA bits, or a simple spectral test.

Spectral test (inputs without SCL/QA, e.g. Sentinel-2 L1C), on top-of-atmosphere reflectance:

* cloud  = blue > 0.18  and  red < 1.1 * blue (white/bluish, not yellow: keeps bare sand and amber pits out)
           and NDSI = (green - swir16) / (green + swir16) < 0.4 (not snow/ice), when swir16 is present
* cirrus = cirrus (S2 B10) > 0.012
* the union is despeckled (binary opening 3x3: drops 1-2 pixel roofs/roads) and dilated by ``SPECTRAL_DILATE_M``
  metres. Cloud shadow is not detected by this test.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

SCL_MASKED_CLASSES = (0, 1, 3, 8, 9, 10)  # no data, saturated/defective, cloud shadow, cloud med/high, thin cirrus
SPECTRAL_BLUE_MIN = 0.18
SPECTRAL_RED_BLUE_MAX = 1.1
SPECTRAL_NDSI_SNOW = 0.4
SPECTRAL_CIRRUS_MIN = 0.012
SPECTRAL_DILATE_M = 30.0

SPECTRAL_DESCRIPTION = (
    f"spectral test on TOA reflectance: (blue>{SPECTRAL_BLUE_MIN} & red<{SPECTRAL_RED_BLUE_MAX}*blue & "
    f"NDSI<{SPECTRAL_NDSI_SNOW}) | cirrus>{SPECTRAL_CIRRUS_MIN}, opened 3x3, dilated {SPECTRAL_DILATE_M:g} m; "
    "no shadow test"
)

BoolArray = NDArray[np.bool_]


def scl_mask(scl: NDArray) -> BoolArray:
    """Sentinel-2 L2A scene classification -> True where cloud, shadow, cirrus or invalid."""
    return np.isin(scl, SCL_MASKED_CLASSES)


def _bits(qa: NDArray, first: int, count: int) -> NDArray:
    return (qa.astype(np.uint32) >> first) & ((1 << count) - 1)


def landsat_qa_c2_mask(qa: NDArray) -> BoolArray:
    """Collection 2 QA_PIXEL: fill (0), dilated cloud (1), cirrus (2), cloud (3), cloud shadow (4)."""
    return _bits(qa, 0, 5) != 0


def landsat_qa_c1_mask(qa: NDArray, cirrus: bool) -> BoolArray:
    """Collection 1 BQA: fill (0), cloud (4), cloud confidence 5-6 high, shadow conf 7-8 high, cirrus 11-12 high."""
    mask = (_bits(qa, 0, 1) == 1) | (_bits(qa, 4, 1) == 1) | (_bits(qa, 5, 2) == 3) | (_bits(qa, 7, 2) == 3)
    if cirrus:
        mask |= _bits(qa, 11, 2) == 3
    return mask


def landsat_qa_pre_mask(qa: NDArray) -> BoolArray:
    """Pre-collection Landsat 8 BQA: fill (0), cirrus confidence 12-13 'yes', cloud confidence 14-15 'yes'."""
    return (_bits(qa, 0, 1) == 1) | (_bits(qa, 12, 2) == 3) | (_bits(qa, 14, 2) == 3)


def spectral_mask(refl: dict[str, NDArray]) -> BoolArray:
    """The spectral test above; ``refl`` maps eo common names to float reflectance (blue and red required)."""
    blue, red = refl["blue"], refl["red"]
    cloud = (blue > SPECTRAL_BLUE_MIN) & (red < SPECTRAL_RED_BLUE_MAX * blue)
    if "green" in refl and "swir16" in refl:
        green, swir = refl["green"], refl["swir16"]
        with np.errstate(invalid="ignore", divide="ignore"):
            ndsi = (green - swir) / (green + swir)
        cloud &= ~(ndsi >= SPECTRAL_NDSI_SNOW)
    if "cirrus" in refl:
        cloud |= refl["cirrus"] > SPECTRAL_CIRRUS_MIN
    return cloud


def disk(radius: int) -> BoolArray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy * yy + xx * xx) <= radius * radius


def despeckle(mask: BoolArray) -> BoolArray:
    if not mask.any():
        return mask
    return ndimage.binary_opening(mask, structure=np.ones((3, 3), dtype=bool))


def dilate(mask: BoolArray, radius: int) -> BoolArray:
    if radius <= 0 or not mask.any():
        return mask
    return ndimage.binary_dilation(mask, structure=disk(radius))
