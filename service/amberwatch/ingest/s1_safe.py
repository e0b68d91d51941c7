"""Sentinel-1 GRD ``.SAFE`` (folder or zip): manifest, annotation and calibration XML, and σ0 calibration.

* ``manifest.safe`` gives the mission (S1A/B/C), mode, product type, polarisations, start time and the
  annotation / calibration / measurement files (read by their ``href``; nothing outside the product is followed).
* Each polarisation's calibration XML carries ``calibrationVector``s: for some image lines, a list of pixel
  columns and the ``sigmaNought`` LUT values there. The σ0 LUT at any (line, pixel) is the **bilinear**
  interpolation of that sparse grid (``interpolate_lut``), and ``σ0 = DN² / A²`` (ESA, "Radiometric Calibration
  of S-1 Level-1 Products", section 2.1; no thermal-noise removal here).
* Measurement pixels: GRD products distributed as metadata only (no ``measurement/*.tiff``) or with an all-zero
  placeholder TIFF are refused with an ``InputError`` saying so. Real pixels are read strip by strip, calibrated and
  averaged over ``looks x looks`` blocks (multilooking: bounded memory, less speckle). The grid is an affine fit to
  the measurement's GCPs (slant geometry, no terrain correction: use RTC products for exact geocoding).

XML is parsed with defusedxml under the size limits of ``ingest.safety``; every message names files by base name.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio.transform import from_gcps

from amberwatch.errors import InputError
from amberwatch.ingest.dates import parse_iso
from amberwatch.ingest.plan import Grid
from amberwatch.ingest.rasters import READ_ERRORS, open_raster, read_error
from amberwatch.ingest.safety import (
    DEFAULT_LIMITS,
    IngestLimits,
    base_name,
    check_inside,
    check_member_name,
    check_zip,
    check_zip_directory,
    parse_xml,
    read_metadata_file,
    read_zip_member,
    vsizip_path,
)

POLARISATIONS = ("VV", "VH", "HH", "HV")
DEFAULT_LOOKS = 4  # GRDH 10 m pixels -> 40 m, ~4.4 x 4 looks
PLACEHOLDER_SAMPLE = 512  # the measurement is sampled on this many rows/columns to spot an all-zero placeholder


@dataclass(frozen=True)
class CalibrationLut:
    """The sparse σ0 LUT of one polarisation: ``values[i, j]`` at image line ``lines[i]`` and column ``pixels[j]``."""

    lines: NDArray[np.float64]
    pixels: NDArray[np.float64]
    values: NDArray[np.float64]  # sigmaNought

    def at(self, rows: NDArray, cols: NDArray) -> NDArray[np.float64]:
        return interpolate_lut(self, rows, cols)


@dataclass
class SafeProduct:
    """What the manifest and annotations of one GRD product say; ``measurement`` maps polarisation -> GDAL path."""

    name: str
    mission: str  # "S1A", "S1B", "S1C"
    mode: str  # "IW", "EW", ...
    product_type: str  # "GRD"
    polarisations: list[str]
    acquired: datetime
    pass_direction: str | None
    lines: int
    samples: int
    calibration: dict[str, CalibrationLut]
    measurement: dict[str, str]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _floats(text: str | None, where: str) -> NDArray[np.float64]:
    try:
        values = np.array([float(v) for v in (text or "").split()], dtype=np.float64)
    except ValueError as err:
        raise InputError(f"{where}: a calibration vector holds something that is not a number") from err
    if not np.all(np.isfinite(values)):
        raise InputError(f"{where}: a calibration vector holds a non-finite number")
    return values


def parse_calibration(xml: bytes, name: str) -> CalibrationLut:
    """The sigmaNought LUT of a ``calibration-*.xml`` (vectors must share their pixel columns, as ESA writes them)."""
    root = parse_xml(xml, name, "Sentinel-1 calibration")
    lines: list[float] = []
    pixels: NDArray[np.float64] | None = None
    rows: list[NDArray[np.float64]] = []
    for vec in (el for el in root.iter() if _local(el.tag) == "calibrationVector"):
        fields = {_local(c.tag): c.text for c in vec}
        px = _floats(fields.get("pixel"), name)
        sigma = _floats(fields.get("sigmaNought"), name)
        if px.size == 0 or px.size != sigma.size:
            raise InputError(f"{name}: a calibration vector has {px.size} pixels but {sigma.size} sigmaNought values")
        if pixels is None:
            pixels = px
        elif px.size != pixels.size or not np.array_equal(px, pixels):
            raise InputError(f"{name}: calibration vectors with different pixel columns are not supported")
        lines.append(float(_floats(fields.get("line"), name)[0]) if fields.get("line") else np.nan)
        rows.append(sigma)
    if pixels is None or len(rows) < 2:
        raise InputError(f"{name} holds fewer than two calibration vectors: not a Sentinel-1 calibration file")
    line_arr = np.asarray(lines)
    if not (np.all(np.diff(line_arr) > 0) and np.all(np.diff(pixels) > 0)):
        raise InputError(f"{name}: calibration lines and pixels must be increasing")
    values = np.vstack(rows)
    if np.any(values <= 0):
        raise InputError(f"{name}: sigmaNought LUT values must be positive")
    return CalibrationLut(lines=line_arr, pixels=pixels, values=values)


def interpolate_lut(lut: CalibrationLut, rows: NDArray, cols: NDArray) -> NDArray[np.float64]:
    """Bilinear interpolation of the LUT at image ``rows`` (1-D) x ``cols`` (1-D) -> array [len(rows), len(cols)].

    Outside the vectors' span the nearest edge cell is extrapolated linearly (ESA's vectors cover the image)."""
    def cell(grid: NDArray[np.float64], x: NDArray) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
        return i, (np.asarray(x, dtype=np.float64) - grid[i]) / (grid[i + 1] - grid[i])

    i, u = cell(lut.lines, rows)
    j, v = cell(lut.pixels, cols)
    a = lut.values
    top = a[i][:, j] * (1 - v) + a[i][:, j + 1] * v
    bottom = a[i + 1][:, j] * (1 - v) + a[i + 1][:, j + 1] * v
    return top * (1 - u)[:, None] + bottom * u[:, None]


def calibrate_sigma0(dn: NDArray, lut: CalibrationLut, row0: int = 0, col0: int = 0) -> NDArray[np.float32]:
    """σ0 (linear power) of a window of measurement DNs whose top-left pixel is (``row0``, ``col0``): DN² / A²;
    DN 0 (no data) -> NaN."""
    rows = np.arange(row0, row0 + dn.shape[0])
    cols = np.arange(col0, col0 + dn.shape[1])
    a = lut.at(rows, cols)
    power = np.abs(dn.astype(np.float64)) ** 2
    out = (power / (a * a)).astype(np.float32)
    out[dn == 0] = np.nan
    return out


# -- reading a product ---------------------------------------------------------------------------------------
class _Source:
    """Reads members of a .SAFE folder or zip with the ingest size limits; ``gdal`` gives a raster's GDAL path."""

    def __init__(self, path: Path, limits: IngestLimits) -> None:
        self.path, self.limits = path, limits
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            check_zip_directory(path, limits)
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as err:
                raise InputError(f"{path.name} is not a readable zip file: {err}") from err
            check_zip(self.zip, path.name, limits)
            manifests = [m for m in self.zip.namelist() if re.search(r"\.SAFE/manifest\.safe$", m)]
            if len(manifests) != 1:
                raise InputError(f"{path.name} must hold exactly one Sentinel-1 *.SAFE/manifest.safe "
                                 f"(found {len(manifests)})")
            self.root = manifests[0].rsplit("/", 1)[0]
            self.name = self.root.rsplit("/", 1)[-1]
        else:
            self.root, self.name = "", path.name
            if not (path / "manifest.safe").is_file():
                raise InputError(f"{path.name} has no manifest.safe: not a Sentinel-1 .SAFE product")

    def _member(self, href: str) -> str:
        rel = href.removeprefix("./")
        check_member_name(rel, self.name)
        return f"{self.root}/{rel}" if self.zip is not None else rel

    def exists(self, href: str) -> bool:
        member = self._member(href)
        if self.zip is not None:
            return member in self.zip.NameToInfo
        return (self.path / member).is_file()

    def read(self, href: str) -> bytes:
        member = self._member(href)
        if self.zip is not None:
            try:
                return read_zip_member(self.zip, member, self.limits)
            except KeyError as err:
                raise InputError(f"{self.name} lacks {base_name(member)}, which its manifest lists") from err
        file = self.path / member
        if not file.is_file():
            raise InputError(f"{self.name} lacks {base_name(member)}, which its manifest lists")
        check_inside(file, self.path)
        return read_metadata_file(file, self.limits)

    def gdal(self, href: str) -> str:
        member = self._member(href)
        if self.zip is not None:
            return vsizip_path(self.path, member)
        return str(check_inside(self.path / member, self.path))

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _manifest_fields(xml: bytes, name: str) -> tuple[dict[str, list[str]], list[str]]:
    root = parse_xml(xml, name, "Sentinel-1 manifest")
    fields: dict[str, list[str]] = {}
    hrefs: list[str] = []
    for el in root.iter():
        if el.text and el.text.strip():
            fields.setdefault(_local(el.tag), []).append(el.text.strip())
        if el.get("href"):
            hrefs.append(str(el.get("href")))
    return fields, hrefs


def _pol_of(href: str) -> str | None:
    m = re.search(r"-(vv|vh|hh|hv)-", base_name(href).lower())
    return m.group(1).upper() if m else None


def read_safe(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> SafeProduct:
    """Parse a GRD .SAFE folder or zip (manifest, annotation, calibration); no pixel is read."""
    src = _Source(path, limits)
    try:
        fields, hrefs = _manifest_fields(src.read("manifest.safe"), "manifest.safe")
        family = fields.get("familyName", [""])[0]
        if family.upper() != "SENTINEL-1":
            raise InputError(f"{src.name}: manifest.safe is not a Sentinel-1 manifest")
        product_type = fields.get("productType", [""])[0]
        if product_type != "GRD":
            raise InputError(f"{src.name} is a Sentinel-1 {product_type or 'unknown'} product: only GRD is supported "
                             "(or give analysis-ready backscatter GeoTIFFs, e.g. OPERA RTC)")
        start = fields.get("startTime", [""])[0]
        acquired = parse_iso(start) if start else None
        if acquired is None:
            raise InputError(f"{src.name}: manifest.safe has no startTime")
        pols = [p for p in fields.get("transmitterReceiverPolarisation", []) if p in POLARISATIONS]
        calibration: dict[str, CalibrationLut] = {}
        measurement: dict[str, str] = {}
        lines = samples = 0
        for href in hrefs:
            pol, name = _pol_of(href), base_name(href)
            if pol is None or not src.exists(href):
                continue  # sample products may omit the files of one polarisation
            if name.startswith("calibration-") and name.endswith(".xml"):
                calibration[pol] = parse_calibration(src.read(href), name)
            elif re.match(r"s1[abc]-", name) and name.endswith(".xml") and "/annotation/" in f"/{href}":
                ann = parse_xml(src.read(href), name, "Sentinel-1 annotation")
                values = {_local(e.tag): (e.text or "").strip() for e in ann.iter() if _local(e.tag) in
                          ("numberOfLines", "numberOfSamples")}
                lines, samples = int(values.get("numberOfLines") or 0), int(values.get("numberOfSamples") or 0)
            elif name.endswith((".tiff", ".tif")) and "measurement/" in href:
                measurement[pol] = src.gdal(href)
        pols = [p for p in pols if p in calibration]
        if not pols:
            raise InputError(f"{src.name} has no calibration XML for any of its polarisations")
        number = fields.get("number", [""])[0]
        return SafeProduct(
            name=src.name, mission=f"S1{number}" if number in ("A", "B", "C", "D") else "S1",
            mode=fields.get("mode", [""])[0], product_type=product_type, polarisations=pols, acquired=acquired,
            pass_direction=(fields.get("pass") or [""])[0] or None, lines=lines, samples=samples,
            calibration=calibration, measurement=measurement,
        )
    finally:
        src.close()


def read_grd_sigma0(product: SafeProduct, pol: str, limits: IngestLimits = DEFAULT_LIMITS,
                    looks: int = DEFAULT_LOOKS) -> tuple[NDArray[np.float32], Grid]:
    """σ0 (linear) of one polarisation, multilooked ``looks x looks``, and its (GCP-fitted) grid.

    InputError when the product carries no measurement pixels for ``pol`` or only an all-zero placeholder."""
    if pol not in product.measurement:
        raise InputError(
            f"{product.name} has no measurement pixels for {pol} (measurement/*.tiff missing): this .SAFE holds "
            "metadata only. Give the full GRD product, or analysis-ready backscatter GeoTIFFs (e.g. OPERA RTC)")
    gdal_path, lut = product.measurement[pol], product.calibration[pol]
    with open_raster(gdal_path, limits, require_crs=False) as ds:  # a GRD measurement is georeferenced by GCPs
        step_r, step_c = max(1, ds.height // PLACEHOLDER_SAMPLE), max(1, ds.width // PLACEHOLDER_SAMPLE)
        try:
            sample = ds.read(1, out_shape=(ds.height // step_r, ds.width // step_c))
        except READ_ERRORS as err:
            raise read_error(gdal_path, err) from err
        if not np.any(sample):
            raise InputError(f"{base_name(gdal_path)} holds no measurement pixels (all zero: a placeholder): "
                             "give the full GRD product")
        out_h, out_w = ds.height // looks, ds.width // looks
        if out_h == 0 or out_w == 0:
            raise InputError(f"{base_name(gdal_path)} is smaller than {looks} x {looks} pixels: nothing to multilook")
        gcps, crs = ds.gcps
        if not gcps:
            raise InputError(f"{base_name(gdal_path)} has no GCPs: cannot place it on a map")
        out = np.empty((out_h, out_w), dtype=np.float32)
        strip = looks * max(1, 1024 // looks)
        for r0 in range(0, out_h * looks, strip):
            r1 = min(r0 + strip, out_h * looks)
            try:
                dn = ds.read(1, window=((r0, r1), (0, out_w * looks)))
            except READ_ERRORS as err:
                raise read_error(gdal_path, err) from err
            sigma = calibrate_sigma0(dn, lut, r0, 0)
            blocks = sigma.reshape((r1 - r0) // looks, looks, out_w, looks)
            with np.errstate(invalid="ignore"):
                out[r0 // looks: r1 // looks] = np.nanmean(blocks, axis=(1, 3))
        transform = from_gcps(gcps) * Affine.scale(looks, looks)
        return out, Grid(crs=crs, transform=transform, width=out_w, height=out_h)
