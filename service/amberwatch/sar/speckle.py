"""Lee speckle filter (Lee 1980, "Digital image enhancement and noise filtering by use of local statistics").

No maintained PyPI package offers a fast SAR Lee filter: ``pyspeckle`` is about laser speckle, ``findpeaks``' Lee
filters loop over pixels in Python and pull in plotting stacks, ``pyroSAR``/``sarsen`` call external processors.
So the filter is written here with scipy's separable box filters, on linear intensity ``I``:

    m = mean(I), v = mean(I²) - m²                 (local statistics in a ``size x size`` window)
    vx = (v - m² Cu²) / (1 + Cu²),  Cu² = 1 / ENL  (variance of the speckle-free signal, clipped at 0)
    W = vx / v                                     (0 in homogeneous areas, -> 1 on edges and point targets)
    Î = m + W (I - m)

NaN pixels (no data) stay NaN and do not enter their neighbours' statistics.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

DEFAULT_SIZE = 5
DEFAULT_ENL = 4.4  # equivalent number of looks of Sentinel-1 IW GRDH (ESA product definition)


def lee_filter(intensity: NDArray, size: int = DEFAULT_SIZE, enl: float = DEFAULT_ENL) -> NDArray[np.float32]:
    """Lee-filtered linear intensity (see module docstring); ``size`` odd window, ``enl`` > 0 looks."""
    if size < 3 or size % 2 == 0:
        raise ValueError("size must be an odd number >= 3")
    if enl <= 0:
        raise ValueError("enl must be positive")
    img = np.asarray(intensity, dtype=np.float64)
    valid = np.isfinite(img)
    x = np.where(valid, img, 0.0)
    w = ndimage.uniform_filter(valid.astype(np.float64), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ndimage.uniform_filter(x, size, mode="nearest") / w
        mean_sq = ndimage.uniform_filter(x * x, size, mode="nearest") / w
        var = np.maximum(mean_sq - mean * mean, 0.0)
        cu2 = 1.0 / enl
        var_x = np.maximum((var - mean * mean * cu2) / (1.0 + cu2), 0.0)
        weight = np.where(var > 0, var_x / var, 0.0)
    out = mean + weight * (x - mean)
    out[~valid] = np.nan
    return out.astype(np.float32)
