"""One way to turn a tiled GeoTIFF written window by window into a Cloud-Optimized GeoTIFF."""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil

COPY_CACHE_BYTES = 128 << 20  # GDAL cache while copying: the COG driver streams, a small cache keeps RSS bounded
BLOCKSIZE = 512  # px; the COG driver also adds overview levels until one fits in a block (ingest.overviews)


def to_cog(src: Path, dst: Path, *, overview_resampling: str = "AVERAGE", predictor: bool = True,
           level: int | None = None) -> None:
    """Copy ``src`` to a DEFLATE COG ``dst`` (BLOCKSIZE px blocks).

    ``overview_resampling``: AVERAGE for continuous values, MODE or NEAREST for classes and masks;
    ``predictor`` helps smooth integer rasters; ``level`` trades speed for size (DEFLATE default 6).
    """
    options = {"COMPRESS": "DEFLATE", "BLOCKSIZE": str(BLOCKSIZE), "OVERVIEW_RESAMPLING": overview_resampling,
               "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}
    if predictor:
        options["PREDICTOR"] = "YES"
    if level is not None:
        options["LEVEL"] = str(level)
    with rasterio.Env(GDAL_CACHEMAX=COPY_CACHE_BYTES):
        rasterio.shutil.copy(str(src), str(dst), driver="COG", **options)
