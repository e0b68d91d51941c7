"""Surface reflectance of mining and confuser materials, and a simple TOA model to place them into L1 scenes.

Values are given at the Sentinel-2 band centres (nm) below and interpolated linearly in wavelength for other
sensors (Landsat OLI/TM).  They are rounded band averages read off published library curves (the library files
are not available offline here, so they were not convolved with the spectral response functions):

* dry/wet quartz sand, sandy soils: USGS Spectral Library Version 7 (Kokaly et al. 2017, splib07a) quartz-sand
  and sandy-soil spectra, ECOSTRESS Spectral Library v1 (Meerdink et al. 2019) Entisol / Quartzipsamment soils;
  wet sand follows the usual wetting behaviour (VNIR ~0.5x, SWIR ~0.35-0.4x by water absorption, Lobell & Asner 2002).
* turbid (sediment-laden) water: Doxaran et al. 2002 / Ritchie et al. 2003 sediment-laden water curves (green-red
  peak, near-zero SWIR); humic dark water: typical peat-stained water of Polissia bogs (< 0.03 everywhere).
* grass, asphalt, terracotta and grey roofing, concrete, limestone: ECOSTRESS v1 vegetation and man-made material
  spectra (Meerdink et al. 2019), rounded.
* clouds: TOA values of water clouds from the real scenes (thin-cloud stripe of the S2 crop, cumulus of the L8 crop).

Every site draws its own brightness/colour variation around these values (see ``synth``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .scenes import Scene

# Sentinel-2 band centres: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12
WAVELENGTHS = np.array([443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190], dtype=np.float64)

SURFACE: dict[str, list[float]] = {
    # mining materials
    "dry_sand": [0.17, 0.20, 0.26, 0.32, 0.34, 0.36, 0.37, 0.39, 0.40, 0.40, 0.40, 0.46, 0.42],
    "wet_sand": [0.09, 0.11, 0.14, 0.18, 0.19, 0.20, 0.21, 0.22, 0.22, 0.20, 0.20, 0.18, 0.14],
    "spoil": [0.10, 0.12, 0.16, 0.20, 0.22, 0.24, 0.25, 0.27, 0.28, 0.28, 0.28, 0.33, 0.28],
    "turbid_water": [0.05, 0.06, 0.09, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03, 0.02, 0.01, 0.01, 0.005],
    "dark_water": [0.015, 0.02, 0.03, 0.025, 0.02, 0.015, 0.012, 0.010, 0.010, 0.008, 0.005, 0.004, 0.003],
    # site surroundings (background label)
    "track": [0.12, 0.14, 0.18, 0.23, 0.25, 0.27, 0.28, 0.30, 0.31, 0.31, 0.31, 0.36, 0.31],
    "disturbed": [0.07, 0.08, 0.11, 0.13, 0.16, 0.21, 0.24, 0.26, 0.27, 0.27, 0.26, 0.29, 0.21],
    "revegetated": [0.06, 0.07, 0.10, 0.09, 0.14, 0.25, 0.30, 0.33, 0.34, 0.33, 0.30, 0.28, 0.18],
    # confusers
    "field_soil": [0.06, 0.07, 0.10, 0.13, 0.15, 0.17, 0.18, 0.20, 0.21, 0.21, 0.21, 0.27, 0.22],
    "sandy_field": [0.10, 0.12, 0.16, 0.21, 0.23, 0.25, 0.26, 0.28, 0.29, 0.29, 0.29, 0.35, 0.30],
    "clear_cut": [0.05, 0.06, 0.09, 0.11, 0.15, 0.20, 0.23, 0.25, 0.26, 0.26, 0.25, 0.30, 0.20],
    "roof_red": [0.06, 0.07, 0.09, 0.22, 0.28, 0.30, 0.31, 0.32, 0.33, 0.33, 0.33, 0.36, 0.30],
    "roof_grey": [0.18, 0.20, 0.22, 0.24, 0.25, 0.26, 0.26, 0.27, 0.27, 0.27, 0.27, 0.28, 0.26],
    "asphalt": [0.06, 0.07, 0.08, 0.09, 0.10, 0.10, 0.11, 0.11, 0.12, 0.12, 0.12, 0.14, 0.13],
    "grass": [0.03, 0.04, 0.08, 0.05, 0.12, 0.28, 0.36, 0.40, 0.41, 0.40, 0.35, 0.25, 0.13],
    "limestone": [0.35, 0.40, 0.45, 0.50, 0.52, 0.53, 0.54, 0.55, 0.56, 0.56, 0.56, 0.58, 0.50],
}
# TOA reflectance of an opaque water cloud (rounded from the brightest cloud pixels of the two real scenes)
CLOUD_TOA = [0.55, 0.55, 0.55, 0.56, 0.56, 0.56, 0.56, 0.56, 0.56, 0.45, 0.30, 0.42, 0.28]

LABEL_OF_MATERIAL = {"dry_sand": 1, "wet_sand": 1, "spoil": 1, "turbid_water": 2, "dark_water": 2}

# two-way transmittance by wavelength: low in blue, ~0 in the 1375 nm cirrus band (no surface signal)
_T_WL = [443, 490, 560, 665, 705, 783, 865, 945, 1375, 1610, 2190]
_T_VAL = [0.70, 0.75, 0.82, 0.86, 0.88, 0.89, 0.90, 0.55, 0.0, 0.92, 0.92]


@lru_cache(maxsize=4096)
def surface(material: str, wavelength: float) -> float:
    """Surface reflectance of a library material at a wavelength (nm)."""
    return float(np.interp(wavelength, WAVELENGTHS, SURFACE[material]))


def transmittance(wavelength: float) -> float:
    """Two-way atmospheric transmittance used by the TOA model."""
    return float(np.interp(wavelength, _T_WL, _T_VAL))


def cloud_toa(wavelength: float) -> float:
    return float(np.interp(wavelength, WAVELENGTHS, CLOUD_TOA))


def path_reflectance(scene: Scene) -> dict[str, float]:
    """Per band path reflectance: darkest-object estimate (0.5th percentile) minus a 1 % dark surface."""
    out = {}
    for name, band in scene.bands.items():
        valid = band.data[band.data > 0]
        dark = float(np.percentile(valid, 0.5)) if valid.size else 0.0
        out[name] = max(0.0, dark - transmittance(band.wavelength) * 0.01)
    return out


def cached_path_reflectance(scene: Scene) -> dict[str, float]:
    """:func:`path_reflectance`, computed once per scene object."""
    cached = getattr(scene, "_path_reflectance", None)
    if cached is None:
        cached = path_reflectance(scene)
        scene._path_reflectance = cached  # type: ignore[attr-defined]
    return cached


def toa(surface_reflectance: float, path: float, wavelength: float) -> float:
    """TOA reflectance of a surface in this scene: path + T * R."""
    return path + transmittance(wavelength) * surface_reflectance
