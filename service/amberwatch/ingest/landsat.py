"""Landsat 4/5/7/8/9 reader: a folder with ``*_MTL.txt`` and band GeoTIFFs (pre-collection, Collection 1 and 2).

* Level 1: TOA reflectance = (REFLECTANCE_MULT_BAND_n * DN + REFLECTANCE_ADD_BAND_n) / sin(SUN_ELEVATION).
* Collection 2 Level 2: surface reflectance = DN * mult + add from LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  (2.75e-05 and -0.2 for every band).
* DN 0 is fill. Stack: OLI bands 1-7 (L8/9) or TM/ETM+ bands 1,2,3,4,5,7 at the 30 m grid of band 2.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

from amberwatch.errors import InputError
from amberwatch.ingest.bands import (
    LANDSAT_OLI_ID_TO_NAME,
    LANDSAT_OLI_WAVELENGTHS,
    LANDSAT_TM_ID_TO_NAME,
    LANDSAT_TM_WAVELENGTHS,
)
from amberwatch.ingest.cloud import SPECTRAL_DESCRIPTION, SPECTRAL_DILATE_M
from amberwatch.ingest.dates import parse_iso
from amberwatch.ingest.plan import BandSource, MaskKind, MaskSource, ScenePlan
from amberwatch.ingest.rasters import grid_of, open_raster
from amberwatch.ingest.safety import DEFAULT_LIMITS, IngestLimits, check_inside, check_plain_name, read_metadata_file

MTL_NAME = re.compile(r"_MTL\.txt$", re.IGNORECASE)
_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")
_DATA_TYPE_TO_LEVEL = {"L1T": "L1TP", "L1G": "L1GS", "L1GT": "L1GT"}


class Mtl:
    """A parsed MTL file: values by group, searchable by key."""

    def __init__(self, groups: dict[str, dict[str, str]], source: str) -> None:
        self.groups = groups
        self.source = source

    def get(self, key: str, *groups: str) -> str | None:
        for g in groups:
            if key in self.groups.get(g, {}):
                return self.groups[g][key]
        for values in self.groups.values():
            if key in values:
                return values[key]
        return None

    def require(self, key: str, *groups: str) -> str:
        value = self.get(key, *groups)
        if value is None:
            raise InputError(f"Landsat metadata {self.source} has no {key}: unreadable or unsupported MTL file")
        return value


def parse_mtl(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> Mtl:
    """Parse an MTL file (at most ``limits.max_metadata_mb``); messages name the file, never quote it."""
    name = path.name
    try:
        text = read_metadata_file(path, limits).decode("ascii")
    except UnicodeDecodeError as err:
        raise InputError(f"cannot read Landsat metadata {name}: not an ASCII text file") from err
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _LINE.match(line)
        if not m:
            if line.strip() and line.strip() != "END":
                raise InputError(f"cannot read Landsat metadata {name}: line {number} is not KEY = VALUE")
            continue
        key, value = m.group(1), m.group(2).strip('"')
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups.setdefault(stack[-1], {})[key] = value
    if not groups:
        raise InputError(f"cannot read Landsat metadata {name}: no GROUP sections (not an MTL file)")
    return Mtl(groups, name)


def find_mtl(path: Path) -> Path | None:
    if path.is_file():
        return path if MTL_NAME.search(path.name) else None
    found = sorted(p for p in path.iterdir() if p.is_file() and MTL_NAME.search(p.name))
    if len(found) > 1:
        raise InputError(
            f"{path.name} holds several Landsat MTL files ({', '.join(p.name for p in found)}): give one scene")
    return found[0] if found else None


def _find_file(folder: Path, mtl_name: str | None, pattern: str) -> str | None:
    """The band file the MTL names (a bare name in the MTL's folder only), else the first matching file name."""
    if mtl_name and (folder / check_plain_name(mtl_name, "the Landsat MTL file")).is_file():
        found = folder / mtl_name
    else:
        rx = re.compile(pattern, re.IGNORECASE)
        hits = sorted(p for p in folder.iterdir() if p.is_file() and rx.search(p.name))
        if not hits:
            return None
        found = hits[0]
    check_inside(found, folder)
    return str(found)


def _acquired(mtl: Mtl) -> datetime:
    day = mtl.require("DATE_ACQUIRED")
    time = (mtl.get("SCENE_CENTER_TIME") or "00:00:00Z").strip('"')
    dt = parse_iso(f"{day}T{time}")
    if dt is None:
        raise InputError(
            f"Landsat metadata {mtl.source}: cannot parse DATE_ACQUIRED/SCENE_CENTER_TIME {day[:20]} {time[:20]}")
    return dt


def _scene_key(mtl: Mtl, number: int, level_code: str, acquired: datetime) -> str:
    product = mtl.get("LANDSAT_PRODUCT_ID")
    if product:
        return "_".join(product.split("_")[:4])
    scene = mtl.get("LANDSAT_SCENE_ID") or ""
    m = re.fullmatch(r"L([COTE])(\d)(\d{3})(\d{3})(\d{4})(\d{3})\w*", scene)
    if m:
        sensor, sat, path, row = m.group(1), m.group(2), m.group(3), m.group(4)
    else:
        sensor, sat = {8: "C", 9: "C", 7: "E"}.get(number, "T"), str(number)
        path, row = f"{int(_number(mtl, 'WRS_PATH', None)):03d}", f"{int(_number(mtl, 'WRS_ROW', None)):03d}"
    return f"L{sensor}0{sat}_{level_code}_{path}{row}_{acquired:%Y%m%d}"


def plan_landsat(mtl_path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    folder = mtl_path.parent
    check_inside(mtl_path, folder)
    mtl = parse_mtl(mtl_path, limits)
    craft = mtl.require("SPACECRAFT_ID")
    m = re.search(r"(\d)$", craft)
    if not m or int(m.group(1)) not in (4, 5, 7, 8, 9):
        raise InputError(f"Landsat metadata {mtl_path.name}: unsupported SPACECRAFT_ID {craft[:40]}")
    number = int(m.group(1))
    collection = int(_number(mtl, "COLLECTION_NUMBER", "0"))  # 0 = pre-collection
    level_code = (mtl.get("PROCESSING_LEVEL") or mtl.get("DATA_TYPE") or "L1TP").strip('"')
    level_code = _DATA_TYPE_TO_LEVEL.get(level_code, level_code)
    is_l2 = level_code.startswith("L2") or "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in mtl.groups
    acquired = _acquired(mtl)
    oli = number >= 8
    id_to_name = LANDSAT_OLI_ID_TO_NAME if oli else LANDSAT_TM_ID_TO_NAME
    wavelengths = LANDSAT_OLI_WAVELENGTHS if oli else LANDSAT_TM_WAVELENGTHS

    sin_elev = 1.0
    if not is_l2:
        elevation = _number(mtl, "SUN_ELEVATION", None, "IMAGE_ATTRIBUTES")
        if elevation <= 0:
            raise InputError(f"Landsat metadata {mtl_path.name}: sun elevation {elevation} <= 0 (night scene)")
        sin_elev = math.sin(math.radians(elevation))
    bands, missing = [], []
    for band_id, name in id_to_name.items():
        n = band_id[1:]
        if is_l2:
            path = _find_file(folder, mtl.get(f"FILE_NAME_BAND_{n}", "PRODUCT_CONTENTS"), rf"_SR_B{n}\.tiff?$")
            mult = _number(mtl, f"REFLECTANCE_MULT_BAND_{n}", "2.75e-05", "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
            add = _number(mtl, f"REFLECTANCE_ADD_BAND_{n}", "-0.2", "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
        else:
            groups = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
            path = _find_file(folder, mtl.get(f"FILE_NAME_BAND_{n}", "PRODUCT_CONTENTS", "PRODUCT_METADATA"),
                              rf"(?<!_SR)(?<!_ST)_B{n}\.tiff?$")
            mult = _number(mtl, f"REFLECTANCE_MULT_BAND_{n}", None, *groups) / sin_elev
            add = _number(mtl, f"REFLECTANCE_ADD_BAND_{n}", None, *groups) / sin_elev
        if path is None:
            missing.append(band_id)
            continue
        bands.append(BandSource(name=name, band_id=band_id, path=path, scale=mult, offset=add, nodata=0,
                                wavelength=wavelengths[band_id]))
    if missing:
        raise InputError(f"Landsat input {folder.name} is missing bands: {', '.join(missing)}")

    kind: MaskKind
    if collection >= 2:
        qa = _find_file(folder, mtl.get("FILE_NAME_QUALITY_L1_PIXEL"), r"_QA_PIXEL\.tiff?$")
        kind, desc = "landsat_qa_c2", "Collection 2 QA_PIXEL bits: fill, dilated cloud, cirrus, cloud, cloud shadow"
    elif collection == 1:
        qa = _find_file(folder, mtl.get("FILE_NAME_BAND_QUALITY"), r"_BQA\.tiff?$")
        kind, desc = "landsat_qa_c1", "Collection 1 BQA bits: fill, cloud, high cloud/shadow/cirrus confidence"
    else:
        qa = _find_file(folder, mtl.get("FILE_NAME_BAND_QUALITY"), r"_BQA\.tiff?$") if oli else None
        kind, desc = "landsat_qa_pre", "pre-collection BQA bits: fill, cloud 'yes' (14-15), cirrus 'yes' (12-13)"
    mask = (MaskSource(kind, qa, description=desc) if qa
            else MaskSource("spectral", dilate_m=SPECTRAL_DILATE_M, description=SPECTRAL_DESCRIPTION))

    with open_raster(bands[[b.band_id for b in bands].index("B2")].path, limits) as ds:
        grid = grid_of(ds)
    level = "L2" if is_l2 else "L1"
    return ScenePlan(
        scene_key=_scene_key(mtl, number, level_code, acquired), sensor=f"landsat{number}", family="landsat",
        level=level, acquired=acquired, bands=bands, grid=grid, mask=mask,
        properties={
            "amberwatch:collection": collection or "pre-collection", "amberwatch:processing_level": level_code,
            "amberwatch:reflectance": "TOA (sun-elevation corrected)" if level == "L1" else "surface (C2 L2)",
            "amberwatch:datetime_source": "metadata", "landsat:wrs_path": mtl.get("WRS_PATH"),
            "landsat:wrs_row": mtl.get("WRS_ROW"), "view:sun_elevation": _float(mtl.get("SUN_ELEVATION")),
        },
    )


def _number(mtl: Mtl, key: str, default: str | None, *groups: str) -> float:
    """A finite number from the MTL (``default`` when absent; required when ``default`` is None)."""
    text = mtl.require(key, *groups) if default is None else (mtl.get(key, *groups) or default)
    value = _float(text)
    if value is None or not math.isfinite(value):
        raise InputError(f"Landsat metadata {mtl.source}: {key} is not a number")
    return value


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
