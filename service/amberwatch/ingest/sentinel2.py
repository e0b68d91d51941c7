"""Sentinel-2 readers: .SAFE folder, .zip of a .SAFE, and a plain folder of per-band files.

DN -> reflectance: ``(DN + offset) / 10000``. The offset is BOA_ADD_OFFSET (L2A) / RADIO_ADD_OFFSET (L1C) from the
product metadata; processing baseline >= 04.00 without offsets in the XML uses -1000. A band folder has no metadata:
acquisitions from 2022-01-25 (first baseline 04.00 products) are assumed to carry the -1000 offset, earlier ones 0;
the STAC item says which was assumed (``amberwatch:radiometric_offset_source``).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from amberwatch.errors import InputError
from amberwatch.ingest.bands import S2_ID_TO_NAME, S2_L2A_BAND_IDS, S2_WAVELENGTHS
from amberwatch.ingest.cloud import SPECTRAL_DESCRIPTION, SPECTRAL_DILATE_M
from amberwatch.ingest.dates import date_from_name, parse_iso
from amberwatch.ingest.plan import BandSource, MaskSource, ScenePlan
from amberwatch.ingest.rasters import grid_of, open_raster
from amberwatch.ingest.safety import (
    DEFAULT_LIMITS,
    IngestLimits,
    base_name,
    check_inside,
    check_zip,
    check_zip_directory,
    parse_xml,
    read_metadata_file,
    read_zip_member,
    vsizip_path,
)
from amberwatch.types import SENTINEL2_BAND_IDS

BAND_FILE = re.compile(r"_(B(?:0[1-9]|1[0-2]|8A)|SCL)(?:_(\d+)m)?\.(?:jp2|tiff?)$", re.IGNORECASE)
TILE = re.compile(r"(?<![A-Z0-9])T(\d{2}[A-Z]{3})(?![A-Z0-9])")
SPACECRAFT = re.compile(r"(?<![A-Za-z0-9])S2([ABC])(?![A-Za-z0-9])")
BASELINE4_START = datetime(2022, 1, 25, tzinfo=UTC)
S2B_LAUNCH = datetime(2017, 3, 7, tzinfo=UTC)
QUANTIFICATION = 10000.0
_Num = TypeVar("_Num", int, float)


@dataclass
class S2Metadata:
    acquired: datetime
    spacecraft: str | None  # "A", "B", "C"
    level: str  # "L1C" / "L2A"
    baseline: str | None
    quantification: float = QUANTIFICATION
    offsets: dict[str, float] = field(default_factory=dict)  # band id -> additive DN offset
    product_uri: str = ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_mtd(xml: bytes, source: str) -> S2Metadata:
    """Parse MTD_MSIL1C.xml / MTD_MSIL2A.xml (namespace-agnostic, defusedxml: no DTD/entities).

    ``source`` is the name shown in messages (a base name, never a server path)."""
    root = parse_xml(xml, source, "Sentinel-2 metadata")
    text: dict[str, str] = {}
    offsets: dict[str, float] = {}
    for el in root.iter():
        name = _local(el.tag)
        if name in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.get("band_id") is not None:
            idx = _number(el.get("band_id", "-1"), source, int)
            if 0 <= idx < len(SENTINEL2_BAND_IDS):
                offsets[SENTINEL2_BAND_IDS[idx]] = _number((el.text or "0").strip(), source, float)
        elif el.text and el.text.strip() and name not in text:
            text[name] = el.text.strip()
    start = text.get("PRODUCT_START_TIME") or text.get("DATATAKE_SENSING_START")
    acquired = parse_iso(start) if start else None
    if acquired is None:
        raise InputError(f"{source} has no PRODUCT_START_TIME: not a Sentinel-2 product metadata file")
    level_text = text.get("PROCESSING_LEVEL", "") + " " + _local(root.tag)
    level = "L2A" if "2A" in level_text else "L1C"
    craft = text.get("SPACECRAFT_NAME", "")
    m = re.search(r"2([ABC])$", craft.strip())
    q = text.get("BOA_QUANTIFICATION_VALUE") if level == "L2A" else text.get("QUANTIFICATION_VALUE")
    return S2Metadata(
        acquired=acquired, spacecraft=m.group(1) if m else None, level=level,
        baseline=text.get("PROCESSING_BASELINE"), quantification=_number(q, source, float) if q else QUANTIFICATION,
        offsets=offsets, product_uri=text.get("PRODUCT_URI", ""),
    )


def _number(text: str, source: str, kind: type[_Num]) -> _Num:
    try:
        value = kind(text)
    except ValueError as err:
        raise InputError(f"{source}: a band offset or quantification value is not a number") from err
    if isinstance(value, float) and not (value == value and abs(value) < 1e9):  # NaN / inf / absurd
        raise InputError(f"{source}: a band offset or quantification value is out of range")
    return value


def _baseline_at_least_4(baseline: str | None) -> bool:
    try:
        return baseline is not None and float(baseline) >= 4.0
    except ValueError:
        return False


def select_band_files(entries: list[tuple[str, str]], where: str) -> dict[str, str]:
    """Map band id (and "SCL") -> GDAL path, keeping the finest resolution when a band comes at several."""
    best: dict[str, tuple[int, str]] = {}
    prefixes: set[str] = set()
    for name, gdal_path in entries:
        m = BAND_FILE.search(name)
        if not m:
            continue
        band = m.group(1).upper()
        prefixes.add(name[: m.start()].rsplit("/", 1)[-1])
        res = int(m.group(2)) if m.group(2) else 0
        if band in best and best[band][0] == res:
            raise InputError(f"{where} holds several files for {band} (e.g. {base_name(best[band][1])} and "
                             f"{base_name(gdal_path)})")
        if band not in best or res < best[band][0]:
            best[band] = (res, gdal_path)
    if len(prefixes) > 1:
        raise InputError(f"{where} holds band files of several scenes ({', '.join(sorted(prefixes))}): give one")
    return {band: path for band, (_, path) in best.items()}


def plan_sentinel2(files: dict[str, str], meta: S2Metadata, names: list[str], source: str,
                   offset_source: str, datetime_source: str, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    """Build the plan from selected band files and metadata; ``names`` are used for tile/spacecraft ids."""
    wanted = SENTINEL2_BAND_IDS if meta.level == "L1C" else S2_L2A_BAND_IDS
    missing = [b for b in wanted if b not in files]
    if missing:
        raise InputError(f"Sentinel-2 {meta.level} input {base_name(source)} is missing bands: {', '.join(missing)}")
    with open_raster(files["B02"], limits) as ds:
        grid = grid_of(ds)
    joined = " ".join(names)
    tile_m = TILE.search(joined)
    tile = f"T{tile_m.group(1)}" if tile_m else None
    craft = meta.spacecraft
    if craft is None:
        m = SPACECRAFT.search(joined)
        craft = m.group(1) if m else ("A" if meta.acquired < S2B_LAUNCH else None)
    sensor = f"sentinel2{craft.lower()}" if craft else "sentinel2"
    bands = [
        BandSource(name=S2_ID_TO_NAME[b], band_id=b, path=files[b], scale=1.0 / meta.quantification,
                   offset=meta.offsets.get(b, 0.0) / meta.quantification, nodata=0, wavelength=S2_WAVELENGTHS[b])
        for b in wanted
    ]
    if "SCL" in files:
        mask = MaskSource("scl", files["SCL"], description="Sentinel-2 SCL classes 0,1 (invalid), 3 (shadow), "
                          "8,9 (cloud), 10 (cirrus)")
    else:
        mask = MaskSource("spectral", dilate_m=SPECTRAL_DILATE_M, description=SPECTRAL_DESCRIPTION)
    offsets = sorted(set(meta.offsets.get(b, 0.0) for b in wanted))
    key_place = tile or re.sub(r"[^A-Za-z0-9-]", "-", Path(source).stem)[:40]
    return ScenePlan(
        scene_key=f"S2{craft or ''}_{meta.level}_{key_place}_{meta.acquired:%Y%m%dT%H%M%S}",
        sensor=sensor, family="sentinel2", level=meta.level, acquired=meta.acquired, bands=bands, grid=grid,
        mask=mask,
        properties={
            "amberwatch:tile_id": tile, "amberwatch:processing_baseline": meta.baseline,
            "amberwatch:radiometric_offset_dn": offsets[0] if len(offsets) == 1 else meta.offsets,
            "amberwatch:radiometric_offset_source": offset_source, "amberwatch:datetime_source": datetime_source,
            "amberwatch:reflectance": "TOA" if meta.level == "L1C" else "BOA (surface)",
        },
    )


def _safe_meta(xml: bytes, source: str) -> tuple[S2Metadata, str]:
    meta = parse_mtd(xml, source)
    if meta.offsets:
        return meta, "metadata"
    if _baseline_at_least_4(meta.baseline):
        meta.offsets = dict.fromkeys(SENTINEL2_BAND_IDS, -1000.0)
        return meta, f"default -1000 for processing baseline {meta.baseline}"
    return meta, "none (processing baseline < 04.00)"


def find_mtd(safe: Path) -> Path | None:
    for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        if (safe / name).is_file():
            return safe / name
    return None


def plan_safe_dir(safe: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    mtd = find_mtd(safe)
    if mtd is None:
        raise InputError(f"{safe.name} has no MTD_MSIL1C.xml / MTD_MSIL2A.xml: not a Sentinel-2 .SAFE product")
    check_inside(mtd, safe)
    meta, offset_source = _safe_meta(read_metadata_file(mtd, limits), mtd.name)
    imgs = [p for p in safe.glob("GRANULE/*/IMG_DATA/**/*") if p.is_file()]
    if not imgs:
        raise InputError(f"{safe.name} has no GRANULE/*/IMG_DATA band files")
    files = select_band_files([(p.name, str(p)) for p in imgs], safe.name)
    for band_file in files.values():
        check_inside(Path(band_file), safe)
    names = [safe.name, meta.product_uri] + [p.name for p in imgs]
    return plan_sentinel2(files, meta, names, safe.name, offset_source, "metadata", limits)


def plan_safe_zip(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    """A zipped .SAFE: the archive is checked by its directory (names, sizes, ratio) before any member is read;
    band files are then read in place through GDAL's /vsizip/ (nothing is extracted)."""
    check_zip_directory(path, limits)
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(zf, path.name, limits)
            members = zf.namelist()
            mtds = [m for m in members if re.search(r"\.SAFE/MTD_MSIL(1C|2A)\.xml$", m)]
            if not mtds:
                raise InputError(
                    f"{path.name} is a zip without a Sentinel-2 .SAFE product inside (no *.SAFE/MTD_MSIL*.xml)")
            if len(mtds) > 1:
                raise InputError(f"{path.name} holds several .SAFE products: zip one per upload")
            xml = read_zip_member(zf, mtds[0], limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as err:
        raise InputError(f"{path.name} is not a readable zip file: {err}") from err
    safe_prefix = mtds[0].rsplit("/", 1)[0]
    meta, offset_source = _safe_meta(xml, base_name(mtds[0]))
    imgs = [m for m in members if m.startswith(safe_prefix + "/GRANULE/") and "/IMG_DATA/" in m and not m.endswith("/")]
    if not imgs:
        raise InputError(f"{path.name} has no GRANULE/*/IMG_DATA band files inside {base_name(safe_prefix)}")
    files = select_band_files([(m, vsizip_path(path, m)) for m in imgs], path.name)
    names = [safe_prefix.rsplit("/", 1)[-1], meta.product_uri] + [m.rsplit("/", 1)[-1] for m in imgs]
    return plan_sentinel2(files, meta, names, path.name, offset_source, "metadata", limits)


def is_band_folder(folder: Path) -> bool:
    return any(BAND_FILE.search(p.name) for p in folder.iterdir() if p.is_file())


def plan_band_folder(folder: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    paths = sorted(p for p in folder.iterdir() if p.is_file() and BAND_FILE.search(p.name))
    files = select_band_files([(p.name, str(p)) for p in paths], folder.name)
    for band_file in files.values():
        check_inside(Path(band_file), folder)
    acquired = None
    for p in paths:
        acquired = date_from_name(p.name)
        if acquired:
            break
    if acquired is None:
        raise InputError(f"no acquisition date in the band file names of {folder.name} (expected YYYYMMDDTHHMMSS)")
    level = "L2A" if "SCL" in files else "L1C"
    if acquired >= BASELINE4_START:
        offsets, offset_source = dict.fromkeys(SENTINEL2_BAND_IDS, -1000.0), "assumed from date >= 2022-01-25"
    else:
        offsets, offset_source = {}, "assumed none (date before 2022-01-25)"
    meta = S2Metadata(acquired=acquired, spacecraft=None, level=level, baseline=None, offsets=offsets)
    names = [folder.name] + [p.name for p in paths]
    return plan_sentinel2(files, meta, names, folder.name, offset_source, "file name", limits)
