"""Small rasterio helpers that turn GDAL failures into InputError messages a user can act on."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import rasterio
from pyproj import Geod
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader

from amberwatch.errors import InputError
from amberwatch.ingest.plan import Grid
from amberwatch.ingest.safety import IngestLimits, base_name, check_raster_size, gdal_guard, scrub, sniff

log = logging.getLogger(__name__)
READ_ERRORS = (RasterioError, CPLE_BaseError)


def display_path(path: str) -> str:
    """A GDAL path as a message may show it: the file's base name only (never a server directory)."""
    return base_name(path)


def read_error(path: str, err: Exception) -> InputError:
    """'cannot be read' with GDAL's reason, directories scrubbed (the full error goes to the log)."""
    log.info("reading %s failed: %s", path, err)
    return InputError(f"{display_path(path)} cannot be read (corrupt or truncated file): {scrub(str(err))}")


@contextmanager
def open_raster(path: str, limits: IngestLimits, require_crs: bool = True) -> Iterator[DatasetReader]:
    """Open an input raster safely, raising InputError if it is not a GeoTIFF/JPEG 2000, is too large or has no CRS.

    The file is sniffed by its first bytes and opened with that one driver (a VRT or any other format that can
    point at other files or URLs is never handed to GDAL); its size is checked from the header against
    ``limits`` before anything is read. The dataset is open, and read, inside ``safety.gdal_guard()``.
    """
    driver = sniff(path)
    gdal_path = path if path.startswith("/vsizip/") else os.path.abspath(path)  # never parsed as a URL
    with gdal_guard():
        try:
            ds = rasterio.open(gdal_path, driver=driver)
        except READ_ERRORS as err:
            log.info("opening %s failed: %s", path, err)
            raise InputError(f"{display_path(path)} is not a readable raster (corrupt, truncated or not an image): "
                             f"{scrub(str(err))}") from err
        try:
            check_raster_size(ds, display_path(path), limits)
            if ds.crs is None and require_crs:  # a Sentinel-1 GRD measurement has GCPs instead
                raise InputError(f"{display_path(path)} has no CRS (no georeferencing): cannot place it on a map")
            yield ds
        finally:
            ds.close()


def grid_of(ds: DatasetReader) -> Grid:
    return Grid(crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height)


def same_grid(a: Grid, b: Grid) -> bool:
    return (
        a.width == b.width
        and a.height == b.height
        and a.crs == b.crs
        and a.transform.almost_equals(b.transform, precision=1e-6 * max(abs(a.transform.a), 1e-9))
    )


def ground_resolution(grid: Grid) -> float:
    """Pixel size in metres: the grid step for metric projected CRSs, else measured on the ellipsoid at the centre."""
    crs = grid.crs
    if crs.is_projected and crs.linear_units in ("metre", "meter", "m") and crs.to_epsg() not in (3857, 900913):
        return float(abs(grid.transform.a))
    from pyproj import Transformer

    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    cx, cy = grid.width / 2, grid.height / 2
    x0, y0 = grid.transform @ (cx, cy)
    x1, y1 = grid.transform @ (cx + 1, cy)
    lon0, lat0 = to_ll.transform(x0, y0)
    lon1, lat1 = to_ll.transform(x1, y1)
    dist = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)[2]
    return float(dist) if math.isfinite(dist) else float(abs(grid.transform.a))


def verify_readable(ds: DatasetReader, path: str) -> None:
    """Read the last block of the first band so truncated files fail here, not mid-way."""
    try:
        h, w = ds.block_shapes[0]
        row = max(0, ds.height - h)
        col = max(0, ds.width - w)
        ds.read(1, window=((row, ds.height), (col, ds.width)))
    except READ_ERRORS as err:
        raise read_error(path, err) from err
