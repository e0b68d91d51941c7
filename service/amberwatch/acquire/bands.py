"""Which STAC collections we read and how their assets map to the band files our ingest accepts.

* Sentinel-2 L2A/L1C: one asset per band (keys ``B02``/``blue``/``B02_10m``..., or by ``eo:bands`` name), written
  as a Sentinel-2 band folder (``<S2x>_T<tile>_<YYYYMMDDTHHMMSS>_<band>.tif``, see ``ingest.sentinel2``); L2A needs
  its SCL asset (the cloud mask).
* Landsat Collection 2 L2: the MTL text asset and the reflective band assets, written under the file names of their
  hrefs (the names the MTL lists), i.e. a Landsat folder (``ingest.landsat``).
* Sentinel-1 RTC/GRD: the polarisation assets (vv, vh, hh, hv), named ``S1<x>_<YYYYMMDDTHHMMSS>_<POL>[_RTC].tif`` for
  ``ingest.sentinel1``; a GRD must be geocoded (a product without a CRS is refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from amberwatch.errors import InputError
from amberwatch.ingest.bands import LANDSAT_OLI_IDS, S2_L2A_BAND_IDS
from amberwatch.ingest.dates import parse_iso
from amberwatch.types import SENTINEL2_BAND_IDS

Kind = Literal["sentinel2", "landsat", "sentinel1"]

# band id -> other asset keys seen in the wild (earth-search v1 common names; Copernicus Data Space "_10m" keys)
S2_ALIASES: dict[str, tuple[str, ...]] = {
    "B01": ("coastal",), "B02": ("blue",), "B03": ("green",), "B04": ("red",), "B05": ("rededge1",),
    "B06": ("rededge2",), "B07": ("rededge3",), "B08": ("nir",), "B8A": ("nir08",), "B09": ("nir09",),
    "B10": ("cirrus",), "B11": ("swir16",), "B12": ("swir22",), "SCL": ("scl",),
}
LANDSAT_ALIASES: dict[str, tuple[str, ...]] = {
    "B1": ("coastal", "SR_B1"), "B2": ("blue", "SR_B2"), "B3": ("green", "SR_B3"), "B4": ("red", "SR_B4"),
    "B5": ("nir08", "SR_B5"), "B6": ("swir16", "SR_B6"), "B7": ("swir22", "SR_B7"),
}
MTL_KEYS = ("mtl.txt", "MTL_TXT", "mtl_txt", "MTL")


@dataclass
class AssetPlan:
    """The files to write for one item: file name -> asset href, plus text files (Landsat MTL) to copy as is."""

    kind: Kind
    rasters: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)


def kind_of(collection: str, item: dict[str, Any]) -> Kind | None:
    """The family of an item, from its collection id, platform and constellation."""
    props = item.get("properties") or {}
    text = " ".join(str(v) for v in (collection, item.get("collection"), props.get("platform"),
                                    props.get("constellation"), item.get("id"))).lower()
    if "sentinel-1" in text or "sentinel1" in text or re.search(r"\bs1[abc]?_", text):
        return "sentinel1"
    if "sentinel-2" in text or "sentinel2" in text or re.search(r"\bs2[abc]?_", text):
        return "sentinel2"
    if "landsat" in text:
        return "landsat"
    return None


def cloud_cover(item: dict[str, Any]) -> float | None:
    value = (item.get("properties") or {}).get("eo:cloud_cover")
    return float(value) if isinstance(value, int | float) else None


def acquired(item: dict[str, Any]) -> datetime | None:
    props = item.get("properties") or {}
    when = props.get("datetime") or props.get("start_datetime")
    return parse_iso(when) if isinstance(when, str) else None


def _find(assets: dict[str, Any], band: str, aliases: tuple[str, ...]) -> str | None:
    lower = {k.lower(): v for k, v in assets.items()}
    for key in (band, *aliases, f"{band}_10m", f"{band}_20m", f"{band}_60m"):
        asset = assets.get(key) or lower.get(key.lower())
        if isinstance(asset, dict) and asset.get("href"):
            return str(asset["href"])
    for asset in assets.values():  # by eo:bands name
        names = [str(b.get("name", "")).upper() for b in asset.get("eo:bands") or [] if isinstance(b, dict)]
        if names == [band.upper()] and asset.get("href"):
            return str(asset["href"])
    return None


def _level(collection: str, item: dict[str, Any]) -> str:
    props = item.get("properties") or {}
    text = f"{collection} {item.get('id')} {props.get('s2:product_type', '')} {props.get('processing:level', '')}"
    return "L1C" if re.search(r"l1c|1c", text, re.IGNORECASE) else "L2A"


def _s2_prefix(item: dict[str, Any], when: datetime) -> str:
    props = item.get("properties") or {}
    craft = re.search(r"2([abc])$", str(props.get("platform", "")).lower())
    tile = props.get("s2:mgrs_tile") or props.get("grid:code", "")
    m = re.search(r"(\d{2}[A-Z]{3})", str(tile).replace("MGRS-", "")) or re.search(
        r"(?:^|_)T?(\d{2}[A-Z]{3})(?:_|$)", str(item.get("id", "")))
    parts = [f"S2{craft.group(1).upper()}" if craft else "S2"]
    if m:
        parts.append(f"T{m.group(1)}")
    parts.append(f"{when:%Y%m%dT%H%M%S}")
    return "_".join(parts)


def asset_plan(collection: str, item: dict[str, Any]) -> AssetPlan:
    """What to read for ``item``; InputError when a band our ingest needs has no asset."""
    kind = kind_of(collection, item)
    assets = item.get("assets") or {}
    when = acquired(item)
    if when is None:
        raise InputError(f"item {item.get('id')}: no datetime")
    if kind == "sentinel2":
        level = _level(collection, item)
        wanted = list(SENTINEL2_BAND_IDS if level == "L1C" else (*S2_L2A_BAND_IDS, "SCL"))
        found = {b: _find(assets, b, S2_ALIASES.get(b, ())) for b in wanted}
        missing = [b for b, href in found.items() if href is None]
        if missing:
            raise InputError(f"item {item.get('id')}: Sentinel-2 {level} without assets for {', '.join(missing)}")
        prefix = _s2_prefix(item, when)
        return AssetPlan("sentinel2", {f"{prefix}_{b}.tif": str(href) for b, href in found.items()})
    if kind == "landsat":
        mtl = next((str(assets[k]["href"]) for k in MTL_KEYS if isinstance(assets.get(k), dict)), None)
        if mtl is None:
            raise InputError(f"item {item.get('id')}: Landsat without its MTL text asset (mtl.txt)")
        rasters: dict[str, str] = {}
        for band in LANDSAT_OLI_IDS:
            href = _find(assets, band, LANDSAT_ALIASES[band])
            if href is not None:
                rasters[_file_name(href)] = href
        if not rasters:
            raise InputError(f"item {item.get('id')}: Landsat without reflective band assets")
        qa = _find(assets, "qa_pixel", ("QA_PIXEL", "qa", "BQA"))  # the cloud mask bits (ingest.landsat)
        if qa is not None:
            rasters[_file_name(qa)] = qa
        return AssetPlan("landsat", rasters, {_file_name(mtl): mtl})
    if kind == "sentinel1":  # named as ingest.sentinel1 reads them: mission, date, polarisation, RTC = gamma0
        craft = re.search(r"1([abcd])$", str((item.get("properties") or {}).get("platform", "")).lower())
        rtc = "_RTC" if re.search(r"rtc", f"{collection} {item.get('id')}", re.IGNORECASE) else ""
        prefix = f"S1{craft.group(1).upper() if craft else ''}_{when:%Y%m%dT%H%M%S}"
        rasters = {}
        for pol in ("vv", "vh", "hh", "hv"):
            href = _find(assets, pol, (pol.upper(),))
            if href is not None:
                rasters[f"{prefix}_{pol.upper()}{rtc}.tif"] = href
        if not rasters:
            raise InputError(f"item {item.get('id')}: Sentinel-1 without VV/VH/HH/HV assets")
        return AssetPlan("sentinel1", rasters)
    raise InputError(f"item {item.get('id')}: not a Sentinel-2, Landsat or Sentinel-1 item")


def _file_name(href: str) -> str:
    name = urlsplit(href).path.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name) or name.startswith("."):
        raise InputError(f"asset file name {name[:60]!r} is not a plain file name")
    return name
