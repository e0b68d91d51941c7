"""Single-file inputs: a multi-band GeoTIFF with named bands, or a very-high-resolution RGB(A) image.

Multi-band GeoTIFF: band descriptions are Sentinel-2 band ids (B01..B12, B8A), Landsat ids (B1..B7, needs a
SENSOR tag) or eo common names; extra bands SCL / QA_PIXEL / BQA give the cloud mask. Values: a float raster whose
maximum (sampled) is <= 2 is taken as reflectance; anything else as DN / 10000 (no Sentinel-2 offset is applied).
The file's nodata (else 0) marks nodata. Date from tags ACQUISITION_DATETIME / DATETIME / DATE_ACQUIRED or a date in
the file name; sensor from tags SENSOR / SPACECRAFT / PLATFORM, else implied by the band names.

VHR RGB: 3 or 4 uint8 bands without sensor band names; written as a uint8 RGB COG at native resolution (no
reflectance, no cloud mask); an alpha band becomes the dataset mask. The date falls back to the file's
modification time, flagged in the STAC item (``amberwatch:datetime_source``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rasterio.enums import ColorInterp

from amberwatch.errors import InputError
from amberwatch.ingest.bands import (
    LANDSAT_OLI_ID_TO_NAME,
    LANDSAT_OLI_WAVELENGTHS,
    LANDSAT_TM_ID_TO_NAME,
    LANDSAT_TM_WAVELENGTHS,
    S2_ID_TO_NAME,
    S2_NAME_TO_ID,
    S2_WAVELENGTHS,
    VHR_BANDS,
)
from amberwatch.ingest.cloud import SPECTRAL_DESCRIPTION, SPECTRAL_DILATE_M
from amberwatch.ingest.dates import date_from_name, date_from_tags
from amberwatch.ingest.plan import BandSource, MaskSource, ScenePlan
from amberwatch.ingest.rasters import READ_ERRORS, grid_of, open_raster, read_error
from amberwatch.ingest.safety import DEFAULT_LIMITS, IngestLimits
from amberwatch.ingest.sentinel2 import BAND_FILE, SPACECRAFT, TILE
from amberwatch.types import LANDSAT_OLI_BANDS, LANDSAT_TM_BANDS, SENTINEL2_BANDS, SensorFamily

S2_ID = re.compile(r"^B(0[1-9]|1[0-2]|8A)$")
SHORT_ID = re.compile(r"^B([1-9])$")
S2_ONLY_NAMES = {"rededge1", "rededge2", "rededge3", "nir", "nir09"}
QA_NAMES = {"SCL": "scl", "QA_PIXEL": "landsat_qa_c2", "BQA": "landsat_qa_c1"}
SENSOR_TAGS = ("SENSOR", "SPACECRAFT", "SPACECRAFT_ID", "SPACECRAFT_NAME", "PLATFORM", "SATELLITE")
REFLECTANCE_FLOAT_MAX = 2.0
_STANDARD_TOKEN = re.compile(  # parts of a product name that the scene key already carries
    r"S2[ABC]?|MSIL[12][AC]|L1C|L2A|T\d{2}[A-Z]{3}|\d{8}(T\d{6})?|N\d{4}|R\d{3}", re.IGNORECASE
)


def _sensor_from_tags(tags: dict[str, str]) -> tuple[SensorFamily | None, str | None]:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in SENSOR_TAGS:
        value = re.sub(r"[^a-z0-9]", "", upper.get(key, "").lower())
        if not value:
            continue
        m = re.fullmatch(r"(?:sentinel2|s2)([abc])?(?:msi)?", value)
        if m:
            return "sentinel2", f"sentinel2{m.group(1) or ''}"
        m = re.fullmatch(r"(?:landsat|l[cote]0?)([45789])\w*", value)
        if m:
            return "landsat", f"landsat{m.group(1)}"
    return None, None


def _is_vhr(ds_dtype: str, count: int, descs: list[str]) -> bool:
    names = {d.lower() for d in descs if d}
    return ds_dtype == "uint8" and count in (3, 4) and names <= {"red", "green", "blue", "alpha", "nir"}


def plan_geotiff(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> ScenePlan:
    """A single GeoTIFF/JP2 (sniffed, opened with its one driver, size-checked by ``open_raster``)."""
    with open_raster(str(path), limits) as ds:
        descs = [(d or "").strip() for d in ds.descriptions]
        tags = ds.tags()
        if _is_vhr(ds.dtypes[0], ds.count, descs):
            return _plan_vhr(path, ds, descs, tags)
        if ds.count == 1 and not any(descs) and BAND_FILE.search(path.name):
            raise InputError(f"{path.name} is a single Sentinel-2 band file: give the folder that holds all band files")
        return _plan_multiband(path, ds, descs, tags)


def _band_names(descs: list[str], family: SensorFamily | None, sensor: str | None, path: Path
                ) -> tuple[SensorFamily, dict[str, tuple[int, str]], dict[str, int], list[str]]:
    """(family, common name -> (band index, band id), QA kind -> index, ignored descriptions)."""
    ids = [d.upper() for d in descs]
    if family is None:
        if any(S2_ID.match(i) for i in ids) or any(d.lower() in S2_ONLY_NAMES for d in descs):
            family = "sentinel2"
        elif any(SHORT_ID.match(i) or d.lower() in LANDSAT_OLI_BANDS for i, d in zip(ids, descs, strict=True)):
            raise InputError(
                f"{path.name}: cannot tell the sensor from band names {descs[:20]}: set the tag SENSOR (e.g. LANDSAT_8)"
            )
        else:
            raise _unknown_layout(path, descs)
    oli = family == "landsat" and sensor in ("landsat8", "landsat9")
    id_map = S2_ID_TO_NAME if family == "sentinel2" else (LANDSAT_OLI_ID_TO_NAME if oli else LANDSAT_TM_ID_TO_NAME)
    names_ok = set(SENTINEL2_BANDS if family == "sentinel2" else (LANDSAT_OLI_BANDS if oli else LANDSAT_TM_BANDS))
    found: dict[str, tuple[int, str]] = {}
    qa: dict[str, int] = {}
    ignored: list[str] = []
    for index, (desc, upper) in enumerate(zip(descs, ids, strict=True), start=1):
        if upper in QA_NAMES:
            qa[QA_NAMES[upper]] = index
            continue
        if upper in id_map:
            name, band_id = id_map[upper], upper
        elif desc.lower() in names_ok:
            name = desc.lower()
            band_id = S2_NAME_TO_ID.get(name, name) if family == "sentinel2" else _landsat_id(name, id_map)
        else:
            ignored.append(desc or f"band {index} (no description)")
            continue
        if name in found:
            raise InputError(f"{path.name}: band {name} appears twice (bands {found[name][0]} and {index})")
        found[name] = (index, band_id)
    if not found:
        raise _unknown_layout(path, descs)
    return family, found, qa, ignored


def _landsat_id(name: str, id_map: dict[str, str]) -> str:
    return next(i for i, n in id_map.items() if n == name)


def _unknown_layout(path: Path, descs: list[str]) -> InputError:
    shown = ", ".join((d or "(none)")[:20] for d in descs[:20]) + (", ..." if len(descs) > 20 else "")
    return InputError(
        f"{path.name}: unknown band layout ({len(descs)} bands, descriptions: {shown}). Set band descriptions to "
        "Sentinel-2 band ids (B01..B12, B8A) or eo common names (blue, green, red, nir, ...)"
    )


def _plan_multiband(path: Path, ds, descs: list[str], tags: dict[str, str]) -> ScenePlan:
    family, sensor = _sensor_from_tags(tags)
    family, found, qa, ignored = _band_names(descs, family, sensor, path)
    need = [n for n in ("blue", "green", "red") if n not in found]
    if "nir" not in found and "nir08" not in found:
        need.append("nir" if family == "sentinel2" else "nir08")
    if need:
        raise InputError(f"{path.name} is missing bands: {', '.join(need)} (found {', '.join(found)})")
    if sensor is None:
        m = SPACECRAFT.search(path.name)
        sensor = f"sentinel2{m.group(1).lower()}" if family == "sentinel2" and m else family
    acquired, datetime_source = date_from_tags(tags), "tag"
    if acquired is None:
        acquired, datetime_source = date_from_name(path.name), "file name"
    if acquired is None:
        raise InputError(
            f"{path.name}: no acquisition date: set the tag ACQUISITION_DATETIME or put YYYYMMDD in the file name"
        )

    order = SENTINEL2_BANDS if family == "sentinel2" else (
        LANDSAT_OLI_BANDS if sensor in ("landsat8", "landsat9") else LANDSAT_TM_BANDS)
    indexes = [found[n][0] for n in order if n in found]
    is_float = np.issubdtype(np.dtype(ds.dtypes[0]), np.floating)
    scale, values = 1e-4, "DN / 10000"
    if is_float:
        try:
            sample = ds.read(indexes, out_shape=(len(indexes), min(ds.height, 512), min(ds.width, 512)),
                             masked=True)
        except READ_ERRORS as err:
            raise read_error(str(path), err) from err
        finite = sample.compressed()
        finite = finite[np.isfinite(finite)]
        if finite.size and float(finite.max()) <= REFLECTANCE_FLOAT_MAX:
            scale, values = 1.0, "float reflectance"
    nodata = ds.nodata if ds.nodata is not None else 0
    waves = S2_WAVELENGTHS if family == "sentinel2" else (
        LANDSAT_OLI_WAVELENGTHS if sensor in ("landsat8", "landsat9") else LANDSAT_TM_WAVELENGTHS)
    bands = [
        BandSource(name=n, band_id=found[n][1], path=str(path), index=found[n][0], scale=scale, nodata=nodata,
                   wavelength=waves.get(found[n][1]))
        for n in order if n in found
    ]
    mask = MaskSource("spectral", dilate_m=SPECTRAL_DILATE_M, description=SPECTRAL_DESCRIPTION)
    for kind in ("scl", "landsat_qa_c2", "landsat_qa_c1"):
        if kind in qa:
            mask = MaskSource(kind, str(path), qa[kind], description=f"{kind} band of the input")  # type: ignore[arg-type]
            break
    level_tag = next((v for k, v in tags.items() if k.upper() in ("PROCESSING_LEVEL", "LEVEL")), "")
    if family == "sentinel2":
        level = "L2A" if "2A" in level_tag.upper() else "L1C" if "1C" in level_tag.upper() else (
            "L2A" if "scl" in qa else "L1C")
    else:
        level = "L2" if "2" in level_tag else "L1"
    stem = re.sub(r"[^A-Za-z0-9-]", "-", path.stem)[:40]
    if family == "sentinel2":
        tile_text = next((v for k, v in tags.items() if k.upper() == "TILE_ID"), "") + " " + path.name
        tile = TILE.search(tile_text.upper())
        craft = sensor.removeprefix("sentinel2").upper()
        key = f"S2{craft}_{level}_{'T' + tile.group(1) if tile else stem}_{acquired:%Y%m%dT%H%M%S}"
        if tile:  # a crop/derivative of a product: keep what else the name says, so keys do not collide
            rest = [t for t in path.stem.split("_") if t and not _STANDARD_TOKEN.fullmatch(t)]
            key += f"_{'-'.join(rest)[:40]}" if rest else ""
    else:
        number = sensor.removeprefix("landsat")
        letter = {"8": "C", "9": "C", "7": "E"}.get(number, "T")
        key = f"L{letter}0{number}_{level}_{stem}_{acquired:%Y%m%d}"
    return ScenePlan(
        scene_key=key, sensor=sensor, family=family, level=level, acquired=acquired, bands=bands, grid=grid_of(ds),
        mask=mask,
        properties={
            "amberwatch:datetime_source": datetime_source, "amberwatch:input_values": values,
            "amberwatch:level_source": "tag" if level_tag else "default",
            "amberwatch:ignored_bands": ignored or None,
            **_passthrough_tags(tags),
        },
    )


def _passthrough_tags(tags: dict[str, str]) -> dict[str, object]:
    """Keep a provenance NOTE and the simulated-data flag of our demo scene in the STAC item."""
    upper = {k.upper(): v for k, v in tags.items()}
    out: dict[str, object] = {}
    if upper.get("NOTE"):
        out["amberwatch:note"] = upper["NOTE"]
    if upper.get("AMBERWATCH_SIMULATED", "").lower() in ("true", "1", "yes"):
        out["amberwatch:simulated"] = True
    return out


def _plan_vhr(path: Path, ds, descs: list[str], tags: dict[str, str]) -> ScenePlan:
    lower = [d.lower() for d in descs]
    interp = list(ds.colorinterp)
    index: dict[str, int] = {}
    for name, ci in zip(VHR_BANDS, (ColorInterp.red, ColorInterp.green, ColorInterp.blue), strict=True):
        if name in lower:
            index[name] = lower.index(name) + 1
        elif ci in interp:
            index[name] = interp.index(ci) + 1
    if len(index) < 3:  # no usable names or colour interpretation: assume band order R, G, B
        index = {"red": 1, "green": 2, "blue": 3}
    alpha_index = None
    if "alpha" in lower:
        alpha_index = lower.index("alpha") + 1
    elif ColorInterp.alpha in interp:
        alpha_index = interp.index(ColorInterp.alpha) + 1
    acquired, source = date_from_tags(tags), "tag"
    if acquired is None:
        acquired, source = date_from_name(path.name), "file name"
    if acquired is None:
        acquired = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        source = "file modification time (no date in tags or file name)"
    bands = [BandSource(name=n, band_id=n, path=str(path), index=index[n], scale=1.0, nodata=ds.nodata)
             for n in VHR_BANDS]
    alpha = BandSource("alpha", "alpha", str(path), alpha_index, nodata=None) if alpha_index else None
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", path.stem)[:60]
    return ScenePlan(
        scene_key=f"VHR_{stem}", sensor="vhr_rgb", family="vhr_rgb", level="RGB", acquired=acquired, bands=bands,
        grid=grid_of(ds), mask=MaskSource("none", description="no cloud mask for VHR RGB"), output_dtype="uint8",
        alpha=alpha,
        properties={"amberwatch:datetime_source": source,
                    "amberwatch:input_values": "uint8 RGB copied as is (not reflectance)"},
    )
