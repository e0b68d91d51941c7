"""Typed interfaces between the pipeline stages: ingest -> detect -> vectorize -> store -> publish."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from shapely.geometry.base import BaseGeometry

SensorFamily = Literal["sentinel2", "landsat", "vhr_rgb"]
DetectionClass = Literal["pit", "pond"]

# Stack order of the reflectance COG that ingest writes, by sensor family (STAC eo common names).
SENTINEL2_BANDS: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "cirrus", "swir16", "swir22",
)
SENTINEL2_BAND_IDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
LANDSAT_OLI_BANDS: tuple[str, ...] = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
LANDSAT_TM_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir08", "swir16", "swir22")
REFLECTANCE_SCALE = 1e-4  # stored uint16 DN * scale = reflectance; 0 = nodata


@dataclass
class IngestedScene:
    """A scene on the common grid: a uint16 reflectance COG (x 1e-4, nodata 0) and a cloud mask COG."""

    scene_key: str  # stable id, e.g. "S2A_L1C_T33UUU_20170216T102101"
    sensor: str  # "sentinel2a", "sentinel2b", "landsat8", "landsat9", "landsat5", "landsat7", "vhr_rgb"
    family: SensorFamily
    level: str  # "L1C", "L2A", "L1", "L2", "RGB"
    acquired: datetime  # timezone-aware UTC
    bands: list[str]  # eo common names, in stack order
    resolution: float  # metres
    crs: str  # "EPSG:32633" or WKT
    bounds: tuple[float, float, float, float]  # in crs
    footprint_wgs84: BaseGeometry  # polygon in EPSG:4326
    reflectance_path: Path
    cloud_mask_path: Path | None  # uint8: 1 = cloud/shadow/invalid, 0 = clear
    source: str  # what the user gave us (path)
    cloud_fraction: float = 0.0
    stac_item: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectedPolygon:
    """One polygon out of the vectorizer, in EPSG:4326 with its geodesic area (``amberwatch.area.area_ha``)."""

    geometry: BaseGeometry  # Polygon/MultiPolygon, EPSG:4326
    cls: DetectionClass
    area_ha: float
    confidence: float  # mean class probability inside the polygon, 0..1 (combined with the change model if run)
    change_class: str | None = None  # dominant change class inside the polygon when a reference scene was given
    change_fraction: float | None = None  # fraction of the polygon's pixels in the expected change class


@dataclass
class DetectionResult:
    """Output of running one model over one scene."""

    scene_key: str
    model_name: str
    model_version: str
    observed_at: datetime
    polygons: list[DetectedPolygon]
    probability_path: Path | None  # COG, one band per class (uint8 0..255 = probability)
    provider: str  # onnxruntime provider actually used
    parameters: dict[str, Any] = field(default_factory=dict)
    # Where the scene saw the ground: the clear (not cloud/shadow/invalid) pixels of its cloud mask, EPSG:4326.
    # None = no cloud mask: clear everywhere in the scene footprint. Site tracking uses it to tell "observed, nothing
    # detected" from "not observed" without opening rasters (amberwatch.detect.clearsky.clear_sky_footprint).
    clear_sky: BaseGeometry | None = None


Progress = Callable[[float, str], None]  # (fraction 0..1, message)


def noop_progress(_: float, __: str) -> None:
    """A progress callback that shows nothing."""
