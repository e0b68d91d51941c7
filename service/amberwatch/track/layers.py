"""Read reference layers (oblasts, raions, hromadas, protected areas) from GeoPackage/GeoJSON/Shapefile.

Reading only: storing them is ``amberwatch.store.queries.layers``, the use case ``usecases.monitoring.load_layer``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyogrio.errors import DataSourceError
from pyproj import CRS, Transformer

from amberwatch.errors import InputError
from amberwatch.track.geo import multi

log = logging.getLogger(__name__)

ADMIN_KINDS = ("oblast", "raion", "hromada")
KINDS = (*ADMIN_KINDS, "protected_area")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")

# Name fields tried in order (first present wins); kind-specific ones first, then generic ones.
_GENERIC_NAMES = ["shapeName", "name_uk", "name_ua", "name", "NAME", "Name", "Name_EN", "name_en", "NAME_EN"]
NAME_FIELDS: dict[str, list[str]] = {
    "oblast": ["ADM1_UA", "ADMIN_1", "NAME_1", *_GENERIC_NAMES, "ADM1_EN"],
    "raion": ["ADM2_UA", "ADMIN_2", "NAME_2", *_GENERIC_NAMES, "ADM2_EN"],
    "hromada": ["ADM3_UA", "ADMIN_3", "NAME_3", *_GENERIC_NAMES, "ADM3_EN"],
    "protected_area": ["name_en", "name_uk", "Site_name", "NAME", "name", "Name", "ORIG_NAME", "Name_EN", "shapeName"],
}
CODE_FIELDS = ["COD_3", "ADM3_PCODE", "ADM2_PCODE", "ADM1_PCODE", "shapeISO", "shapeID", "WDPAID", "ramsar_id",
               "KOATUU", "code", "CODE", "id", "Id"]
PARENT_FIELDS = {"raion": ["ADM1_UA", "ADMIN_1"], "hromada": ["ADMIN_2", "ADM2_UA"]}
CATEGORY_FIELDS = ["category", "CATEGORY", "IUCN_CAT", "DESIG_ENG", "DESIG", "Name_12_13", "TYPE", "type"]

# Latin letters that look like Cyrillic ones (the KSE hromada names mix them in).
_HOMOGLYPHS = str.maketrans("aceiopxyABCEHIKMOPTX", "асеіорхуАВСЕНІКМОРТХ")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def fix_mixed_script(name: str) -> str:
    """Replace Latin look-alike letters by Cyrillic ones in words that are otherwise Cyrillic."""
    return re.sub(r"\S+", lambda m: m.group(0).translate(_HOMOGLYPHS) if _CYRILLIC.search(m.group(0)) else m.group(0),
                  name).strip()


@dataclass
class Feature:
    name: str
    code: str | None
    parent: str | None
    category: str | None
    geom: shapely.MultiPolygon  # EPSG:4326


def vector_files(path: Path) -> list[Path]:
    """``path`` itself, or the vector files in a directory (sorted)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in VECTOR_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no vector file ({', '.join(VECTOR_SUFFIXES)}) in this directory")
        return files
    return [path]


def _pick(fields: list[str], wanted: str | None, candidates: list[str], what: str, path: Path) -> str | None:
    if wanted:
        if wanted not in fields:
            raise InputError(f"{path}: no field {wanted!r} for the {what}; fields are: {', '.join(fields) or 'none'}")
        return wanted
    return next((c for c in candidates if c in fields), None)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    s = str(value).strip()
    return s or None


def read_features(path: Path, kind: str, name_field: str | None = None, code_field: str | None = None,
                  category_field: str | None = None, layer: str | None = None) -> list[Feature]:
    """Read polygons from one vector file, reprojected to EPSG:4326, with name/code/parent/category."""
    import pyogrio.raw

    check_kind(kind)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        meta, _, wkb, values = pyogrio.raw.read(path, layer=layer)
    except DataSourceError as err:
        raise InputError(f"{path}: not a readable vector file ({err})") from err
    fields = list(meta["fields"])
    if wkb is None or meta.get("geometry_type") in (None, "None"):
        raise InputError(f"{path}: the file has no geometry; {kind} needs polygons")
    name_f = _pick(fields, name_field, NAME_FIELDS[kind], "name", path)
    if name_f is None:
        raise InputError(f"{path}: cannot tell which field holds the {kind} name (fields: {', '.join(fields)}); "
                         "give it with --name-field")
    code_f = _pick(fields, code_field, CODE_FIELDS, "code", path)
    parent_f = next((c for c in PARENT_FIELDS.get(kind, []) if c in fields), None)
    cat_f = _pick(fields, category_field, CATEGORY_FIELDS, "category", path) if kind == "protected_area" else None
    col = {f: values[i] for i, f in enumerate(fields)}
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    geoms = shapely.force_2d(shapely.from_wkb(wkb))
    if crs is None:
        bounds = shapely.total_bounds(geoms)
        if not (-180 <= bounds[0] <= 180 and -90 <= bounds[1] <= 90 and bounds[2] <= 180 and bounds[3] <= 90):
            raise InputError(f"{path}: the file has no coordinate reference system and is not in lon/lat degrees")
        log.warning("%s has no CRS: assuming EPSG:4326", path)
    elif not crs.equals(CRS.from_epsg(4326)):
        tr = Transformer.from_crs(crs, 4326, always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    # an empty code (geoBoundaries ADM2 has no shapeISO) falls back to the next code field present
    code_fs = [code_f] if code_field else [f for f in CODE_FIELDS if f in col]
    default_cat = "Ramsar site" if kind == "protected_area" and "ramsar_id" in fields else None
    out: list[Feature] = []
    for i, geom in enumerate(geoms):
        poly = multi(geom)
        if geom is None or poly.is_empty:
            if geom is not None and not geom.is_empty:
                raise InputError(f"{path}: feature {i} is a {geom.geom_type}; {kind} layers need polygons")
            continue
        name = _text(col[name_f][i])
        out.append(Feature(
            name=fix_mixed_script(name) if name else f"{kind} {i + 1}",
            code=next((c for c in (_text(col[f][i]) for f in code_fs) if c), None),
            parent=fix_mixed_script(_text(col[parent_f][i]) or "") or None if parent_f else None,
            category=(_text(col[cat_f][i]) if cat_f else None) or default_cat,
            geom=poly,
        ))
    if not out:
        raise InputError(f"{path}: no polygon in the file")
    return out


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown layer kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


@dataclass
class Layer:
    """Features read from one or more files, ready to replace a layer."""

    kind: str
    source: str  # dataset name: protected areas of the same source replace each other
    files: list[Path]
    features: list[Feature]


def read_layer(kind: str, paths: list[Path], name_field: str | None = None, code_field: str | None = None,
               category_field: str | None = None, source: str | None = None, layer: str | None = None) -> Layer:
    """Read every vector file of ``paths`` (files or directories); ``source`` defaults to the first path's
    directory or file name."""
    check_kind(kind)
    if not paths:
        raise InputError("give at least one vector file or directory")
    files = [f for p in paths for f in vector_files(p)]
    features = [f for path in files for f in read_features(path, kind, name_field, code_field, category_field, layer)]
    src = source or (paths[0].name if paths[0].is_dir() else paths[0].stem)
    return Layer(kind, src, files, features)
