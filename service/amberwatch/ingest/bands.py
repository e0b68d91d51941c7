"""Band tables: sensor band ids, eo common names and wavelengths (for the STAC eo extension)."""

from __future__ import annotations

from amberwatch.types import LANDSAT_OLI_BANDS, LANDSAT_TM_BANDS, SENTINEL2_BAND_IDS, SENTINEL2_BANDS

S2_ID_TO_NAME: dict[str, str] = dict(zip(SENTINEL2_BAND_IDS, SENTINEL2_BANDS, strict=True))
S2_NAME_TO_ID: dict[str, str] = {name: band_id for band_id, name in S2_ID_TO_NAME.items()}
# L2A products have no cirrus band (B10): Sen2Cor drops it.
S2_L2A_BAND_IDS: tuple[str, ...] = tuple(b for b in SENTINEL2_BAND_IDS if b != "B10")

# (centre wavelength, full width at half maximum) in micrometres, Sentinel-2A MSI.
S2_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "B01": (0.443, 0.027), "B02": (0.490, 0.098), "B03": (0.560, 0.045), "B04": (0.665, 0.038),
    "B05": (0.704, 0.019), "B06": (0.740, 0.018), "B07": (0.783, 0.028), "B08": (0.842, 0.145),
    "B8A": (0.865, 0.033), "B09": (0.945, 0.026), "B10": (1.375, 0.075), "B11": (1.610, 0.143),
    "B12": (2.190, 0.242),
}

# Landsat reflective bands kept in the stack (pan and thermal are ignored).
LANDSAT_OLI_IDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
LANDSAT_TM_IDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B7")
LANDSAT_OLI_ID_TO_NAME: dict[str, str] = dict(zip(LANDSAT_OLI_IDS, LANDSAT_OLI_BANDS, strict=True))
LANDSAT_TM_ID_TO_NAME: dict[str, str] = dict(zip(LANDSAT_TM_IDS, LANDSAT_TM_BANDS, strict=True))
LANDSAT_OLI_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "B1": (0.443, 0.016), "B2": (0.482, 0.060), "B3": (0.561, 0.057), "B4": (0.655, 0.037),
    "B5": (0.865, 0.028), "B6": (1.609, 0.085), "B7": (2.201, 0.187),
}
LANDSAT_TM_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "B1": (0.485, 0.070), "B2": (0.560, 0.080), "B3": (0.660, 0.060), "B4": (0.830, 0.130),
    "B5": (1.650, 0.200), "B7": (2.215, 0.270),
}

VHR_BANDS: tuple[str, ...] = ("red", "green", "blue")
