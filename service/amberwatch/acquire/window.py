"""Read the area of interest of one asset (HTTP range requests through GDAL's /vsicurl/, or a local file) and write
it as a plain GeoTIFF: never the whole product when a window will do.

Before GDAL opens a remote asset, its first bytes are fetched from an allowed host and sniffed (GeoTIFF / JPEG 2000
only, never a VRT); GDAL then runs inside ``gdal_guard`` with /vsicurl/ opened for that one file suffix.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import rasterio
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from amberwatch.acquire.hosts import check_url, is_http
from amberwatch.acquire.search import PathCheck, fetch_bytes
from amberwatch.errors import InputError
from amberwatch.ingest.safety import IngestLimits, base_name, gdal_guard, raster_driver, scrub, sniff

EPS = 1e-6


def pixel_window(bounds: tuple[float, float, float, float], transform: rasterio.Affine, width: int,
                 height: int) -> Window | None:
    """The whole-pixel window covering ``bounds`` (in the raster's CRS), clipped to the raster; None outside it."""
    inv = ~transform
    xs, ys = zip(*(inv * (x, y) for x in (bounds[0], bounds[2]) for y in (bounds[1], bounds[3])), strict=True)
    c0, c1 = max(0, math.floor(min(xs) + EPS)), min(width, math.ceil(max(xs) - EPS))
    r0, r1 = max(0, math.floor(min(ys) + EPS)), min(height, math.ceil(max(ys) - EPS))
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _gdal_path(href: str, patterns: list[str], check_path: PathCheck) -> tuple[str, str, dict[str, str | int]]:
    """(path for GDAL, driver, extra GDAL options) of an asset, after the host or root check and the sniff."""
    if is_http(href):
        check_url(href, patterns, "asset")
        head = fetch_bytes(href, patterns, limit=1024, headers={"Range": "bytes=0-1023"}, head=True)
        driver = raster_driver(head, base_name(urlsplit(href).path))
        suffix = PurePosixPath(urlsplit(href).path).suffix or "{noext}"
        options: dict[str, str | int] = {
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": suffix, "GDAL_HTTP_TIMEOUT": 30, "GDAL_HTTP_CONNECTTIMEOUT": 10,
            "GDAL_HTTP_MAX_RETRY": 2, "GDAL_HTTP_RETRY_DELAY": 1,
            "CPL_VSIL_CURL_CHUNK_SIZE": 262144, "GDAL_INGESTED_BYTES_AT_OPEN": 65536,
        }
        return f"/vsicurl/{href}", driver, options
    if "://" in href:
        raise InputError(f"asset {base_name(href)}: only http(s) URLs and local files are read")
    path = check_path(Path(href))
    return str(path), sniff(str(path)), {}


def read_window(href: str, aoi: BaseGeometry, out: Path, patterns: list[str], check_path: PathCheck,
                limits: IngestLimits) -> bool:
    """Write the part of asset ``href`` under ``aoi`` (EPSG:4326) to ``out``; False when they do not overlap."""
    gdal_path, driver, options = _gdal_path(href, patterns, check_path)
    name = base_name(urlsplit(href).path) if is_http(href) else base_name(href)
    try:
        with gdal_guard(**options), rasterio.open(gdal_path, driver=driver) as ds:
            if ds.crs is None:
                raise InputError(f"asset {name} has no coordinate reference system")
            window = pixel_window(transform_bounds("EPSG:4326", ds.crs, *aoi.bounds, densify_pts=21),
                                  ds.transform, ds.width, ds.height)
            if window is None:
                return False
            n = int(window.width) * int(window.height)
            if n > limits.max_pixels:
                raise InputError(f"the area of interest covers {n} pixels of {name}, more than "
                                 f"AMBERWATCH_MAX_PIXELS={limits.max_pixels}: make it smaller")
            data: np.ndarray = ds.read(window=window)
            profile = {"driver": "GTiff", "width": int(window.width), "height": int(window.height),
                       "count": ds.count, "dtype": data.dtype.name, "crs": ds.crs,
                       "transform": ds.window_transform(window), "nodata": ds.nodata, "compress": "deflate"}
            descriptions, tags = ds.descriptions, ds.tags()
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"asset {name} cannot be read: {scrub(str(err))}") from err
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        for i, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(i, text)
    return True
