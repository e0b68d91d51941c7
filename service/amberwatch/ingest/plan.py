"""What a reader found in the input: band files, scaling, cloud-mask source and the target grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from amberwatch.types import SensorFamily

MaskKind = Literal["scl", "landsat_qa_pre", "landsat_qa_c1", "landsat_qa_c2", "spectral", "s2cloudless", "none"]


@dataclass(frozen=True)
class Grid:
    """The output pixel grid."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


@dataclass
class BandSource:
    """One output band: where to read it and how to turn its DN into reflectance (dn * scale + offset)."""

    name: str  # eo common name
    band_id: str  # sensor band id ("B02", "B5") or the name itself
    path: str  # GDAL path (may be /vsizip/...)
    index: int = 1  # band index inside the file
    scale: float = 1e-4
    offset: float = 0.0
    nodata: float | None = 0  # source fill value
    wavelength: tuple[float, float] | None = None  # (centre, fwhm) in micrometres
    resampling: Resampling = Resampling.bilinear


@dataclass
class MaskSource:
    """Where the cloud mask comes from; ``path`` is the QA/SCL raster (None for the spectral test)."""

    kind: MaskKind
    path: str | None = None
    index: int = 1
    dilate_m: float = 0.0  # dilate clouds by this many metres (spectral test)
    description: str = ""


@dataclass
class ScenePlan:
    """Everything needed to write the scene; produced by a sensor-specific reader."""

    scene_key: str
    sensor: str
    family: SensorFamily
    level: str
    acquired: datetime
    bands: list[BandSource]
    grid: Grid
    mask: MaskSource
    output_dtype: Literal["uint16", "uint8"] = "uint16"
    alpha: BandSource | None = None  # VHR: alpha band -> dataset mask
    properties: dict[str, Any] = field(default_factory=dict)  # extra STAC item properties
