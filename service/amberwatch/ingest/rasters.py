"""Small rasterio helpers that turn GDAL failures into InputError messages a user can act on."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import rasterio
from pyproj import Geod
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader

from amberwatch.errors import InputError
from amberwatch.ingest.plan import Grid

READ_ERRORS = (RasterioError, CPLE_BaseError)


def display_path(path: str) -> str:
    """A GDAL path as the user knows it (without the /vsizip/ prefix)."""
    return path.removeprefix("/vsizip/")


@contextmanager
def open_raster(path: str) -> Iterator[DatasetReader]:
    """Open a raster, raising InputError if it is not a readable raster or has no CRS."""
    try:
        ds = rasterio.open(path)
    except READ_ERRORS as err:
        msg = f"{display_path(path)} is not a readable raster (corrupt, truncated or not an image): {err}"
        raise InputError(msg) from err
    try:
        if ds.crs is None:
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
        raise InputError(f"{display_path(path)} cannot be read (corrupt or truncated file): {err}") from err
