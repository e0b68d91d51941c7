"""Overviews of the reflectance COG computed as the row blocks stream by, instead of by GDAL's COG driver.

The COG driver builds AVERAGE overviews by re-reading and re-decoding the whole band stack: about three quarters of
the time of writing the reflectance COG. Here each block of rows is halved in-process as it is written (the mean
of the valid pixels of each 2 x 2 block, 0 = nodata, rounded half up: exactly GDAL's AVERAGE at level 2) into a
half-resolution GeoTIFF. GDAL then averages that small file (a quarter of the pixels) for the coarser levels and
it becomes the stack's external ``.ovr``: the COG driver copies existing overviews instead of computing them.
Levels 4 and coarser are GDAL's averages of the level-2 means, so they may differ from GDAL's averages of the full
resolution by a unit or so (1e-4 reflectance); the full-resolution pixels are untouched. A grid with an odd width
or height keeps GDAL's overviews (GDAL then averages fractional footprints, which 2 x 2 blocks would not match).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.windows import Window

from amberwatch.cog import BLOCKSIZE
from amberwatch.ingest.plan import Grid

_HALF = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "ZSTD",
         "zstd_level": 1, "predictor": 2, "interleave": "band", "BIGTIFF": "IF_SAFER"}


def overview_factors(width: int, height: int, block: int = BLOCKSIZE) -> list[int]:
    """The overview factors GDAL's COG driver makes by default: 2, 4, ... while the last level exceeds a block."""
    factors: list[int] = []
    w, h, f = width, height, 1
    while w > block or h > block:
        f *= 2
        w, h = math.ceil(w / 2), math.ceil(h / 2)
        factors.append(f)
    return factors


def halve(block: NDArray[np.uint16]) -> NDArray[np.uint16]:
    """[bands, h, w] uint16 with 0 = nodata (in every band at once) -> [bands, ceil(h/2), ceil(w/2)]: the mean of
    the valid pixels of each 2 x 2 block, rounded half up; 0 where none is valid."""
    if block.shape[1] % 2 or block.shape[2] % 2:
        block = np.pad(block, ((0, 0), (0, block.shape[1] % 2), (0, block.shape[2] % 2)))
    quads = (block[:, 0::2, 0::2], block[:, 1::2, 0::2], block[:, 0::2, 1::2], block[:, 1::2, 1::2])
    total = quads[0].astype(np.uint32)
    count = (quads[0][0] != 0).astype(np.uint32)
    for q in quads[1:]:
        total += q
        count += q[0] != 0
    if count.min() == 4:  # no nodata in this block: the same rounding, without a division
        total += 2
        total >>= 2
        return total.astype(np.uint16)
    out = (total + count // 2) // np.maximum(count, 1)
    return out.astype(np.uint16)


class HalfResolution:
    """Streams the level-2 overview of a uint16 stack (0 = nodata) to a GeoTIFF, block of rows by block of rows
    (blocks start on even rows), then turns it into the stack's external overviews (:meth:`attach`). Inactive
    (GDAL's COG driver makes the overviews) when the grid needs none or has an odd side."""

    def __init__(self, path: Path, grid: Grid, count: int) -> None:
        self.path = path
        even = grid.width % 2 == 0 and grid.height % 2 == 0
        self.factors = overview_factors(grid.width, grid.height) if even else []
        self.dst = rasterio.open(
            path, "w", **_HALF, count=count, dtype="uint16", nodata=0, crs=grid.crs,
            transform=grid.transform * grid.transform.scale(2), width=math.ceil(grid.width / 2),
            height=math.ceil(grid.height / 2),
        ) if self.factors else None

    def add(self, block: NDArray[np.uint16], row0: int) -> None:
        """Add the rows ``row0 .. row0 + h`` of the stack (``row0`` even)."""
        if self.dst is None:
            return
        if row0 % 2:
            raise ValueError("blocks of rows must start on an even row")
        half = halve(block)
        self.dst.write(half, window=Window(0, row0 // 2, half.shape[2], half.shape[1]))

    def attach(self, stack_path: Path) -> None:
        """Close the level-2 file, add the coarser levels (GDAL AVERAGE of it) and make it ``stack_path``'s
        ``.ovr`` (call after the stack is closed: its next opening sees the overviews)."""
        if not self.factors:
            return
        self.close()
        coarser = [f // 2 for f in self.factors[1:]]
        if coarser:
            with rasterio.Env(COMPRESS_OVERVIEW="ZSTD", ZSTD_LEVEL_OVERVIEW="1", PREDICTOR_OVERVIEW="2",
                              NUM_THREADS="ALL_CPUS"), rasterio.open(self.path, "r+") as half:
                half.build_overviews(coarser, Resampling.average)
        os.replace(self.path, f"{stack_path}.ovr")

    def close(self) -> None:
        if self.dst is not None:
            self.dst.close()
            self.dst = None
