"""Sentinel-1 ingest: ``ingest_s1(path or paths) -> S1Scene`` (backscatter in linear power per polarisation).

Accepted inputs (untrusted, inside ``safety.gdal_guard()`` with ``IngestLimits``):

* analysis-ready backscatter GeoTIFFs: OPERA RTC-S1 (γ0, linear power) or any σ0/γ0 GeoTIFF, linear or dB. The
  polarisation comes from the file name (``_VV``, ``-vh.`` ...) or the tags POLARIZATION / POLARISATION or the
  band description; dB is recognised by ``db`` in the name or a UNITS=dB tag, else by values (linear power is never
  negative: a median below 0 means dB). One file per polarisation on one grid; given one file, the sibling with
  the other polarisation (same name, VV <-> VH) is read too when it is there. γ0 vs σ0 from the name / tags
  (``RTC`` or ``gamma`` -> γ0), else σ0.
* a GRD ``.SAFE`` folder or zip: calibrated to σ0 with its LUTs (``ingest.s1_safe``); metadata-only products are
  refused with a clear message.

Pixels are held in memory (float32): rasters above ``MAX_S1_PIXELS`` per polarisation are refused.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from amberwatch.errors import InputError
from amberwatch.ingest.dates import date_from_name, date_from_tags
from amberwatch.ingest.plan import Grid
from amberwatch.ingest.rasters import READ_ERRORS, grid_of, open_raster, read_error, same_grid
from amberwatch.ingest.s1_safe import POLARISATIONS, read_grd_sigma0, read_safe
from amberwatch.ingest.safety import DEFAULT_LIMITS, IngestLimits, check_input_path, gdal_guard

MAX_S1_PIXELS = 100_000_000  # per polarisation: 400 MB of float32
_POL = re.compile(r"(?<![A-Za-z])(VV|VH|HH|HV)(?![A-Za-z])", re.IGNORECASE)
_MISSION = re.compile(r"(?<![A-Za-z0-9])S1([ABCD])(?![A-Za-z0-9])")
_DB = re.compile(r"(?<![A-Za-z])db(?![A-Za-z])", re.IGNORECASE)
POL_TAGS = ("POLARIZATION", "POLARISATION", "POLARIZATIONS", "POLARISATIONS")


@dataclass
class S1Scene:
    """One Sentinel-1 acquisition on one grid: backscatter per polarisation in linear power (NaN = no data)."""

    scene_key: str
    sensor: str  # "sentinel1a" / "sentinel1b" / "sentinel1"
    acquired: datetime  # UTC
    product: str  # "RTC", "GRD", "backscatter"
    quantity: str  # "gamma0" | "sigma0"
    bands: dict[str, NDArray[np.float32]]  # "VV"/"VH"/... -> linear power
    grid: Grid
    sources: list[str] = field(default_factory=list)  # base names of the files read
    properties: dict[str, Any] = field(default_factory=dict)

    def db(self, pol: str) -> NDArray[np.float32]:
        """Backscatter of ``pol`` in dB (10 log10; NaN where no data or not positive)."""
        return power_to_db(self.bands[pol])


def power_to_db(power: NDArray) -> NDArray[np.float32]:
    """Linear backscatter power -> dB (10 log10), float32; NaN where no data or not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (10.0 * np.log10(power)).astype(np.float32)
    out[~np.isfinite(out)] = np.nan
    return out


def is_s1_name(name: str) -> bool:
    """True for names that look like Sentinel-1 products or backscatter files (S1A_..., OPERA_L2_RTC-S1, *.SAFE)."""
    return bool(_MISSION.search(name) or "RTC-S1" in name.upper()) and (
        bool(_POL.search(name)) or name.upper().endswith((".SAFE", ".ZIP")))


def ingest_s1(paths: Path | str | Sequence[Path | str], limits: IngestLimits = DEFAULT_LIMITS) -> S1Scene:
    """Read one Sentinel-1 scene from a GRD .SAFE (folder/zip) or from backscatter GeoTIFFs (one per polarisation).

    Raises InputError (file base names only) for anything that is not readable Sentinel-1 backscatter."""
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not items:
        raise InputError("no Sentinel-1 input given")
    for p in items:
        check_input_path(p)
        if not p.exists():
            raise InputError(f"input path does not exist: {p.name}")
    with gdal_guard():
        if len(items) == 1 and (items[0].is_dir() or zipfile.is_zipfile(items[0])):
            return _ingest_safe(items[0], limits)
        if len(items) == 1:
            items = _with_sibling(items[0])
        return _ingest_geotiffs(items, limits)


def _ingest_safe(path: Path, limits: IngestLimits) -> S1Scene:
    product = read_safe(path, limits)
    bands: dict[str, NDArray[np.float32]] = {}
    grid: Grid | None = None
    for pol in product.polarisations:
        bands[pol], grid = read_grd_sigma0(product, pol, limits)
    assert grid is not None  # read_safe guarantees at least one polarisation
    return S1Scene(
        scene_key=_key(product.mission, product.acquired, product.name.removesuffix(".SAFE")),
        sensor=_sensor(product.mission), acquired=product.acquired, product="GRD", quantity="sigma0", bands=bands,
        grid=grid, sources=[product.name],
        properties={"sar:instrument_mode": product.mode, "sar:polarizations": product.polarisations,
                    "sat:orbit_state": (product.pass_direction or "").lower() or None,
                    "amberwatch:calibration": "sigma0 from the product's LUT (bilinear), multilooked"},
    )


def _with_sibling(path: Path) -> list[Path]:
    """``path`` and the file with the other co-/cross-polarisation next to it (VV <-> VH, HH <-> HV), if any."""
    m = list(_POL.finditer(path.name))
    if not m:
        return [path]
    last = m[-1]
    other = {"VV": "VH", "VH": "VV", "HH": "HV", "HV": "HH"}[last.group(1).upper()]
    if last.group(1).islower():
        other = other.lower()
    sibling = path.with_name(path.name[: last.start()] + other + path.name[last.end():])
    return [path, sibling] if sibling.is_file() and not sibling.is_symlink() else [path]


def _pol_of(path: Path, tags: dict[str, str], desc: str) -> str:
    upper = {k.upper(): v for k, v in tags.items()}
    for text in [path.name, *(upper.get(t, "") for t in POL_TAGS), desc]:
        found = {m.group(1).upper() for m in _POL.finditer(text)}
        if len(found) == 1:
            return found.pop()
    raise InputError(f"{path.name}: no polarisation (VV, VH, HH or HV) in the file name, the tag POLARIZATION or "
                     "the band description")


def _read_backscatter(path: Path, limits: IngestLimits) -> tuple[str, NDArray[np.float32], Grid, dict[str, str]]:
    with open_raster(str(path), limits) as ds:
        if ds.width * ds.height > MAX_S1_PIXELS:
            raise InputError(f"{path.name} is {ds.width} x {ds.height} pixels, more than {MAX_S1_PIXELS} for one "
                             "Sentinel-1 polarisation: crop it")
        tags = ds.tags()
        pol = _pol_of(path, tags, ds.descriptions[0] or "")
        try:
            data = ds.read(1, masked=True).astype(np.float32)
        except READ_ERRORS as err:
            raise read_error(str(path), err) from err
        values = data.filled(np.nan)
        values[~np.isfinite(values)] = np.nan
        units = " ".join(v for k, v in tags.items() if k.upper() in ("UNITS", "UNIT", "SCALE")).lower()
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise InputError(f"{path.name} holds no valid backscatter pixel")
        is_db = "db" in units or bool(_DB.search(path.stem)) or float(np.median(finite)) < 0
        if is_db:
            values = np.power(10.0, values / 10.0, dtype=np.float32)
        elif float(finite.min()) < 0:
            raise InputError(f"{path.name}: negative linear backscatter: not σ0/γ0 power (is it amplitude or dB?)")
        info = {"units": "dB" if is_db else "linear", "gamma": "RTC" if "RTC" in path.name.upper() else ""}
        if re.search(r"gamma|γ", path.name + units + " ".join(tags.values()), re.IGNORECASE):
            info["gamma"] = "gamma"
        return pol, values, grid_of(ds), {**info, **{k: v for k, v in tags.items() if k.upper() in POL_TAGS}}


def _ingest_geotiffs(paths: list[Path], limits: IngestLimits) -> S1Scene:
    bands: dict[str, NDArray[np.float32]] = {}
    grid: Grid | None = None
    infos: list[dict[str, str]] = []
    for path in paths:
        if path.is_dir():
            raise InputError(f"{path.name} is a folder: give a .SAFE, or one backscatter GeoTIFF per polarisation")
        pol, values, g, info = _read_backscatter(path, limits)
        if pol in bands:
            raise InputError(f"{path.name}: polarisation {pol} given twice")
        if grid is not None and not same_grid(grid, g):
            raise InputError(f"{path.name} is not on the same grid as {paths[0].name}: one scene per call")
        bands[pol], grid = values, g
        infos.append(info)
    assert grid is not None
    names = " ".join(p.name for p in paths)
    acquired = date_from_name(paths[0].name)
    if acquired is None:
        with open_raster(str(paths[0]), limits) as ds:
            acquired = date_from_tags(ds.tags())
    if acquired is None:
        raise InputError(f"{paths[0].name}: no acquisition date in the file name (YYYYMMDD) or tags")
    mission = _MISSION.search(names)
    is_rtc = any(i["gamma"] for i in infos)
    stem = _POL.sub("", paths[0].stem)
    return S1Scene(
        scene_key=_key(f"S1{mission.group(1)}" if mission else "S1", acquired, stem),
        sensor=_sensor(f"S1{mission.group(1)}" if mission else "S1"), acquired=acquired,
        product="RTC" if "RTC" in names.upper() else "backscatter", quantity="gamma0" if is_rtc else "sigma0",
        bands={p: bands[p] for p in POLARISATIONS if p in bands}, grid=grid, sources=[p.name for p in paths],
        properties={"sar:polarizations": [p for p in POLARISATIONS if p in bands],
                    "amberwatch:input_units": sorted({i["units"] for i in infos})},
    )


def _sensor(mission: str) -> str:
    return f"sentinel1{mission[2:].lower()}" if len(mission) == 3 else "sentinel1"


def _key(mission: str, acquired: datetime, stem: str) -> str:
    place = re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-")[:60]
    return f"{mission}_{place}_{acquired:%Y%m%dT%H%M%S}"
