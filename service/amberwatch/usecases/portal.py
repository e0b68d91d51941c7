"""Use cases of the geoportal: the map's configuration, place search, vector tiles, one site's page (position,
coordinates, history, model), its before/after image chips (rio-tiler) and its downloads (GeoJSON/GPKG/KML).

The web layer (``web/portal.py``, ``web/tiles.py``) calls these; the SQL is in ``store.queries.portal`` and
``store.queries.tiles``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
from pyproj import Transformer
from shapely.geometry import shape

from amberwatch.errors import InputError, NotFoundError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import portal as portal_queries
from amberwatch.store.queries import tiles as tile_queries
from amberwatch.track.export import DTYPES
from amberwatch.track.rules import STATUSES
from amberwatch.usecases import monitoring

log = logging.getLogger(__name__)

# one colour per status, the same as the WMS styles (ogc_config/mapserver/status.j2)
STATUS_COLOURS = {"new": "#e31a1c", "active": "#fd8d3c", "abandoned": "#969696", "recovering": "#41ab5d"}
MAX_QUERY = 100
SEARCH_LIMIT = 10
MAX_VERTICES = 60
CHIP_PX = 320
CHIP_MIN_HALF_M = 250.0
EXPORT_FORMATS = {"geojson": ("GeoJSON", "application/geo+json"),
                  "gpkg": ("GPKG", "application/geopackage+sqlite3"),
                  "kml": ("KML", "application/vnd.google-earth.kml+xml")}
CHIPS = ("before", "after")


# -- the map ---------------------------------------------------------------------------------------
def map_config(store: Store, settings: Settings) -> dict[str, Any]:
    """What the map page needs: observation dates for the time slider, the data extent, the basemap, colours."""
    with store.session() as session:
        dates = portal_queries.observation_dates(session)
        extent = portal_queries.data_extent(session)
    return {"dates": dates, "extent": extent, "statuses": list(STATUSES), "colours": STATUS_COLOURS,
            "basemap_url": settings.basemap_url, "basemap_attribution": settings.basemap_attribution,
            "tile_layers": list(tile_queries.LAYERS)}


MIN_YEAR, MAX_YEAR = 1950, 2200


def parse_at(value: str | None) -> date | None:
    """``at=YYYY-MM-DD`` of the tiles (None when absent); InputError for anything else or an absurd year."""
    if value is None or value == "":
        return None
    try:
        day = date.fromisoformat(value) if len(value) == 10 and value.isascii() else None
    except ValueError:
        day = None
    if day is None or not MIN_YEAR <= day.year <= MAX_YEAR:
        raise InputError(f"at={value[:40]!r}: expected an ISO date (2018-03-10) between {MIN_YEAR} and {MAX_YEAR}")
    return day


def tile(store: Store, layer: str, z: int, x: int, y: int, at: date | None) -> bytes:
    """One vector tile; InputError for an unknown layer or a z/x/y outside the tile matrix."""
    problem = tile_queries.check_tile(layer, z, x, y)
    if problem:
        raise InputError(problem)
    with store.session() as session:
        return tile_queries.tile(session, layer, z, x, y, at)


# -- search ----------------------------------------------------------------------------------------
@dataclass
class _Places:
    key: tuple[tuple[str, float], ...] = ()
    rows: list[dict[str, Any]] = field(default_factory=list)


_places_cache = _Places()
_places_lock = threading.Lock()
NAME_FIELDS = ("Унормована назва", "name_uk", "name", "NAME")
LATIN_FIELDS = ("Унормована назва латиницею", "name_en")
KIND_FIELDS = ("Вид географічного об'єкту", "kind", "category")


def _place_files(settings: Settings) -> list[Path]:
    files: list[Path] = []
    for p in settings.places_paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(path.glob("*.geojson"))
        elif path.is_file():
            files.append(path)
    return files


def _places(settings: Settings) -> list[dict[str, Any]]:
    """Named points of ``AMBERWATCH_PLACES_PATHS`` (GeoJSON), read once and again when a file changes."""
    files = _place_files(settings)
    key = tuple((str(f), f.stat().st_mtime) for f in files)
    with _places_lock:
        if key != _places_cache.key:
            rows: list[dict[str, Any]] = []
            for f in files:
                try:
                    data = json.loads(f.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    log.warning("places: cannot read %s", f.name)
                    continue
                for feat in data.get("features", []):
                    props, geom = feat.get("properties") or {}, feat.get("geometry") or {}
                    name = next((props[k] for k in NAME_FIELDS if props.get(k)), None)
                    if not name or geom.get("type") != "Point":
                        continue
                    lon, lat = geom["coordinates"][:2]
                    rows.append({"kind": "place", "name": str(name),
                                 "latin": next((str(props[k]) for k in LATIN_FIELDS if props.get(k)), ""),
                                 "category": next((str(props[k]) for k in KIND_FIELDS if props.get(k)), ""),
                                 "x0": lon - 0.01, "y0": lat - 0.01, "x1": lon + 0.01, "y1": lat + 0.01})
            _places_cache.key, _places_cache.rows = key, rows
        return _places_cache.rows


def search(store: Store, settings: Settings, q: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Sites (by number), admin units, protected areas and named places matching ``q``; each with a bbox."""
    q = q.strip()
    if not q:
        raise InputError("q: give a name or a site number")
    if len(q) > MAX_QUERY or any(ord(c) < 32 for c in q):
        raise InputError(f"q: at most {MAX_QUERY} characters, no control characters")
    out: list[dict[str, Any]] = []
    with store.session() as session:
        if q.isascii() and q.isdigit() and len(q) <= 10 and int(q) <= 2**31 - 1:
            bbox = portal_queries.site_bbox(session, int(q))
            if bbox:
                out.append({"kind": "site", "name": str(bbox["site_id"]), "site_id": bbox["site_id"],
                            "bbox": [bbox["x0"], bbox["y0"], bbox["x1"], bbox["y1"]]})
        for r in portal_queries.search_places(session, q, limit):
            out.append({"kind": r["kind"], "name": r["name"], "code": r["code"],
                        "bbox": [r["x0"], r["y0"], r["x1"], r["y1"]]})
    needle = q.lower()
    places = [p for p in _places(settings) if needle in p["name"].lower() or needle in p["latin"].lower()]
    places.sort(key=lambda p: (p["name"].lower() != needle, not p["name"].lower().startswith(needle), p["name"]))
    for p in places[: max(0, limit - len(out))]:
        out.append({"kind": "place", "name": p["name"], "category": p["category"],
                    "bbox": [p["x0"], p["y0"], p["x1"], p["y1"]]})
    return out[:limit]


# -- one site --------------------------------------------------------------------------------------
@dataclass
class SitePage:
    site: dict[str, Any]
    observations: list[dict[str, Any]]
    events: list[dict[str, Any]]
    runs: list[dict[str, Any]]  # observation rows with model and scene
    protected: list[dict[str, Any]]
    centroid: tuple[float, float]  # lon, lat
    utm: dict[str, Any]
    vertices: list[tuple[float, float]]  # lon, lat
    n_vertices: int
    model: str | None
    scenes: list[dict[str, Any]]
    chips: dict[str, dict[str, Any] | None]
    geometry: dict[str, Any] | None
    max_extent: dict[str, Any] | None

    @property
    def chart(self) -> dict[str, list[Any]]:
        return {"dates": [o["observed_at"].date().isoformat() for o in self.observations],
                "area": [round(float(o["area_ha"]), 4) for o in self.observations],
                "cumulative": [round(float(o["cumulative_area_ha"]), 4) for o in self.observations]}


def utm_of(lon: float, lat: float) -> dict[str, Any]:
    zone = min(60, int(math.floor((lon + 180) / 6)) + 1)
    epsg = (32600 if lat >= 0 else 32700) + zone
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    return {"zone": f"{zone}{'N' if lat >= 0 else 'S'}", "epsg": epsg, "easting": x, "northing": y}


def _vertices(geometry: dict[str, Any] | None) -> list[tuple[float, float]]:
    if not geometry:
        return []
    polys = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    out: list[tuple[float, float]] = []
    for poly in polys:
        for ring in poly:
            out.extend((float(x), float(y)) for x, y in ring[:-1])
    return out


def _scenes_covering(store: Store, site_id: int) -> list[dict[str, Any]]:
    with store.session() as session:
        return portal_queries.scenes_covering(session, site_id)


def site_page(store: Store, site_id: int) -> SitePage:
    """Everything the site page and the evidence report show; NotFoundError for an unknown site."""
    history = monitoring.get_site(store, site_id)
    site = dict(history.site)
    geometry = json.loads(site.pop("geometry")) if site.get("geometry") else None
    max_extent = json.loads(site.pop("max_extent")) if site.get("max_extent") else None
    with store.session() as session:
        runs = portal_queries.site_observation_runs(session, site_id)
        protected = portal_queries.nearby_protected_areas(session, site_id)
    shape_src = geometry or max_extent
    if shape_src:
        c = shape(shape_src).centroid
        centroid = (float(c.x), float(c.y))
    else:
        centroid = (float("nan"), float("nan"))
    vertices = _vertices(geometry)
    model_runs = [r for r in runs if r.get("model_name")]
    model = f"{model_runs[-1]['model_name']} {model_runs[-1]['model_version']}" if model_runs else None
    scenes = _scenes_covering(store, site_id)
    chips = {which: pick_chip_scene(scenes, which) for which in CHIPS}
    return SitePage(site=site, observations=history.observations, events=history.events, runs=runs,
                    protected=protected, centroid=centroid,
                    utm=utm_of(*centroid) if shape_src else {}, vertices=vertices[:MAX_VERTICES],
                    n_vertices=len(vertices), model=model, scenes=scenes, chips=chips, geometry=geometry,
                    max_extent=max_extent)


# -- image chips -----------------------------------------------------------------------------------
def _rgb_indexes(bands: list[str]) -> tuple[int, int, int] | None:
    names = [b.lower() for b in bands]
    try:
        return names.index("red") + 1, names.index("green") + 1, names.index("blue") + 1
    except ValueError:
        return None


def check_chip(which: str) -> str:
    if which not in CHIPS:
        raise NotFoundError(f"no chip {which[:20]!r}: use before or after")
    return which


def chip_png(store: Store, site_id: int, which: str, size: int = CHIP_PX) -> bytes:
    """A true-colour PNG of the site in the earliest (``before``) or latest (``after``) scene covering it, the
    site's extent at that date outlined in yellow (the cumulative footprint dashed when none was detected)."""
    check_chip(which)
    page = site_page(store, site_id)
    scene = page.chips[which]
    if scene is None:
        raise NotFoundError(f"site {site_id}: no stored scene with red, green and blue bands covers it")
    if not Path(scene["reflectance_path"]).exists():
        raise NotFoundError(f"site {site_id}: the reflectance of scene {scene['scene_key']} is no longer stored")
    with store.session() as session:
        extent = portal_queries.site_extent_at(session, site_id, scene["acquired"])
    outline = json.loads(extent) if extent else page.max_extent
    assert page.max_extent is not None
    return render_chip(scene, page.max_extent, outline, bold=bool(extent), size=size)


def pick_chip_scene(scenes: list[dict[str, Any]], which: str) -> dict[str, Any] | None:
    """The earliest (``before``) or latest (``after``) of ``scenes`` (oldest first) that has red, green and blue."""
    check_chip(which)
    usable = [s for s in scenes if _rgb_indexes(s.get("bands") or []) is not None]
    return (usable[0] if which == "before" else usable[-1]) if usable else None


def render_chip(scene: dict[str, Any], frame: dict[str, Any], outline: dict[str, Any] | None, *, bold: bool = True,
                size: int = CHIP_PX) -> bytes:
    """A true-colour PNG of ``scene`` (a row with ``reflectance_path`` and ``bands``) centred on ``frame`` (GeoJSON,
    EPSG:4326; at least 2 x CHIP_MIN_HALF_M across), ``outline`` (GeoJSON) drawn in yellow (a point as a ring)."""
    from PIL import Image, ImageDraw
    from rasterio.warp import transform_geom
    from rio_tiler.io import Reader

    indexes = _rgb_indexes(scene["bands"])
    assert indexes is not None
    with Reader(scene["reflectance_path"]) as src:
        crs = src.crs
        native = shape(transform_geom("EPSG:4326", crs, frame))
        cx, cy = native.centroid.x, native.centroid.y
        x0, y0, x1, y1 = native.bounds
        half = max(CHIP_MIN_HALF_M, 0.8 * max(x1 - x0, y1 - y0))
        bbox = (cx - half, cy - half, cx + half, cy + half)
        img = src.part(bbox, bounds_crs=crs, dst_crs=crs, indexes=indexes, width=size, height=size,
                       resampling_method="bilinear")
    data = img.data.astype("float32")
    valid = np.asarray(img.mask) > 0
    values = data[:, valid] if valid.any() else data.reshape(3, -1)
    # each band stretched between its 2nd and 98th percentile: removes the blue haze of top-of-atmosphere data
    lo = np.percentile(values, 2, axis=1)[:, None, None] if values.size else np.zeros((3, 1, 1))
    hi = np.percentile(values, 98, axis=1)[:, None, None] if values.size else np.ones((3, 1, 1))
    hi = np.maximum(hi, lo + 1.0)
    rgb = np.clip((data - lo) / (hi - lo), 0, 1) ** (1 / 1.2) * 255
    arr = np.moveaxis(rgb.astype("uint8"), 0, -1).copy()
    arr[~valid] = (40, 40, 40)
    image = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(image)
    geom_native = shape(transform_geom("EPSG:4326", crs, outline)) if outline else None
    if geom_native is not None:
        def to_px(x: float, y: float) -> tuple[float, float]:
            return (x - bbox[0]) / (2 * half) * size, (bbox[3] - y) / (2 * half) * size

        for part in list(getattr(geom_native, "geoms", [geom_native])):
            if part.geom_type == "Point":
                px, py = to_px(part.x, part.y)
                draw.ellipse((px - 8, py - 8, px + 8, py + 8), outline=(255, 230, 0), width=2)
                continue
            ring = [to_px(x, y) for x, y in part.exterior.coords]
            draw.line(ring, fill=(255, 230, 0), width=2 if bold else 1, joint="curve")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


# -- downloads -------------------------------------------------------------------------------------
def check_export_format(fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"format {fmt[:20]!r}: use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def site_export(store: Store, site_id: int, fmt: str) -> tuple[bytes, str, str]:
    """(file bytes, media type, file name) of one site's current extent with its attributes, EPSG:4326."""
    check_export_format(fmt)
    if not 1 <= site_id <= 2**31 - 1:
        raise NotFoundError(f"site {site_id} not found")
    with store.session() as session:
        row = portal_queries.site_export_row(session, site_id)
    if row is None:
        raise NotFoundError(f"site {site_id} not found")
    fields, values, wkb = row
    columns = [np.array([v], dtype=DTYPES.get(name, object)) for name, v in zip(fields, values, strict=True)]
    driver, media = EXPORT_FORMATS[fmt]
    with tempfile.TemporaryDirectory(prefix="aw-export-") as tmp:
        out = Path(tmp) / f"amberwatch-site-{site_id}.{fmt}"
        pyogrio.raw.write(str(out), geometry=np.array([wkb], dtype=object), field_data=columns, fields=fields,
                          crs="EPSG:4326", geometry_type="MultiPolygon", promote_to_multi=True, driver=driver,
                          layer=f"mining_site_{site_id}")
        return out.read_bytes(), media, out.name


def iso_day(value: datetime | None) -> str:
    return value.date().isoformat() if value else ""
