"""Georeferenced RGB "orthomosaics" assembled from real Texty tiles, for tests and the ortho benchmark.

The pixels are real Bing imagery (internal data: written only to temporary folders, never into the repository);
the mosaic is synthetic: whole example tiles (~1000 x 975 px at 0.37 m), each in a random dihedral view, are
resampled to the target ground resolution and laid side by side on a UTM 35N grid in Rivne oblast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from skimage.transform import resize

from amberwatch.vhr.io import read_rgb
from amberwatch.vhr.preprocess import CHIP_GSD

CRS = "EPSG:32635"
ORIGIN = (440_000.0, 5_700_000.0)  # ~26.14 E, 51.45 N
EXAMPLE_TILES = ("positive1", "positive2", "positive3", "negative1", "negative2", "negative3")


def resample(rgb: np.ndarray, gsd_from: float, gsd_to: float) -> np.ndarray:
    """uint8 (H, W, 3) from ``gsd_from`` to ``gsd_to`` m/px (anti-aliased bilinear)."""
    if abs(gsd_from - gsd_to) < 1e-9:
        return rgb
    h, w = (max(1, round(n * gsd_from / gsd_to)) for n in rgb.shape[:2])
    out = resize(rgb, (h, w), order=1, anti_aliasing=gsd_to > gsd_from, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_ortho(path: Path, grid: list[list[np.ndarray]], gsd: float = 0.4, src_gsd: float = CHIP_GSD) -> Path:
    """Lay out ``grid`` (rows of uint8 RGB tiles at ``src_gsd``) as one tiled RGB GeoTIFF at ``gsd`` m/px.

    Each tile is cropped to the smallest tile height/width of the grid so the rows line up.
    """
    tiles = [[resample(t, src_gsd, gsd) for t in row] for row in grid]
    th = min(t.shape[0] for row in tiles for t in row)
    tw = min(t.shape[1] for row in tiles for t in row)
    height, width = th * len(tiles), tw * max(len(r) for r in tiles)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8", "crs": CRS,
               "transform": from_origin(ORIGIN[0], ORIGIN[1], gsd, gsd), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate", "photometric": "RGB"}
    with rasterio.open(path, "w", **profile) as dst:
        for r, row in enumerate(tiles):
            for c, t in enumerate(row):
                win = rasterio.windows.Window(c * tw, r * th, tw, th)
                dst.write(t[:th, :tw].transpose(2, 0, 1), window=win)
        for b, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(b, name)
    return path


def example_mosaic(chips_dir: Path, path: Path, rows: int, cols: int, gsd: float = 0.4, seed: int = 0) -> Path:
    """A rows x cols mosaic of the 6 example tiles (random tile and dihedral view per cell)."""
    rng = np.random.default_rng(seed)
    tiles = [read_rgb(Path(chips_dir) / "example-tiles" / f"{n}.png") for n in EXAMPLE_TILES]
    grid = []
    for _ in range(rows):
        row = []
        for _ in range(cols):
            t = tiles[int(rng.integers(0, len(tiles)))]
            k = int(rng.integers(0, 8))
            t = np.rot90(t, k % 4)
            row.append(np.ascontiguousarray(t[:, ::-1] if k >= 4 else t))
        grid.append(row)
    return write_ortho(path, grid, gsd)
