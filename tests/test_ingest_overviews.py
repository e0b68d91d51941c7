"""The reflectance COG's overviews computed as the blocks stream by (ingest.overviews) equal GDAL's AVERAGE at
level 2, leave the full resolution untouched, and the product stays a valid COG (real Sentinel-2 pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rio_cogeo.cogeo import cog_validate

from amberwatch.cog import to_cog
from amberwatch.demo import demo_scene_path
from amberwatch.ingest import ingest_path
from amberwatch.ingest import overviews as overviews_module
from amberwatch.ingest import writer as writer_module
from amberwatch.ingest.overviews import HalfResolution, halve, overview_factors
from amberwatch.ingest.plan import Grid


def gdal_level2(a: np.ndarray, path: Path) -> np.ndarray:
    """GDAL's own AVERAGE overview (factor 2) of ``a`` (nodata 0)."""
    bands, h, w = a.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=bands, dtype="uint16", nodata=0,
                       crs="EPSG:32635", transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(a)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2], Resampling.average)
    with rasterio.open(path) as src:
        return src.read(out_shape=(bands, (h + 1) // 2, (w + 1) // 2))


def test_halve_is_gdal_average_with_nodata(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(1, 20000, (3, 96, 130)).astype(np.uint16)
    a[:, rng.random((96, 130)) < 0.15] = 0  # scattered nodata (all bands at once, as ingest writes it)
    a[:, 10:31, 7:60] = 0  # and a block of it
    np.testing.assert_array_equal(halve(a), gdal_level2(a, tmp_path / "a.tif"))


def test_overview_factors_follow_the_cog_driver() -> None:
    assert overview_factors(512, 512) == []
    assert overview_factors(768, 700) == [2]
    assert overview_factors(4608, 4608) == [2, 4, 8, 16]
    assert overview_factors(10980, 10980) == [2, 4, 8, 16, 32]


def test_odd_grid_keeps_gdal_overviews(tmp_path: Path) -> None:
    grid = Grid(CRS.from_epsg(32635), Affine(10, 0, 0, 0, -10, 0), 1001, 1000)
    half = HalfResolution(tmp_path / "half.tif", grid, 2)
    assert half.factors == [] and half.dst is None


@pytest.fixture
def gdal_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The reflectance COG as GDAL's COG driver made it before (the stack without our .ovr)."""
    real = writer_module.HalfResolution

    class Off(real):  # type: ignore[misc, valid-type]
        def attach(self, stack_path: Path) -> None:
            self.close()

    monkeypatch.setattr(writer_module, "HalfResolution", Off)
    scene = ingest_path(demo_scene_path(), tmp_path / "before")
    monkeypatch.setattr(writer_module, "HalfResolution", real)
    return scene.reflectance_path


def test_the_cog_takes_the_streamed_overviews(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The COG driver copies the .ovr made as the blocks went by (it does not compute overviews again): an .ovr
    marked with +1 everywhere shows in the product."""
    real_halve = overviews_module.halve
    monkeypatch.setattr(overviews_module, "halve", lambda block: real_halve(block) + np.uint16(1))
    path = ingest_path(demo_scene_path(), tmp_path / "scene").reflectance_path
    with rasterio.open(path) as src:
        full = src.read()
        level2 = src.read(out_shape=(src.count, src.height // 2, src.width // 2))
    np.testing.assert_array_equal(level2, real_halve(full) + np.uint16(1))


def test_streamed_overviews_on_real_pixels(tmp_path: Path, gdal_made: Path) -> None:
    scene = ingest_path(demo_scene_path(), tmp_path / "scene")
    path = scene.reflectance_path
    valid, errors, warnings = cog_validate(str(path))
    assert valid and not errors and not warnings
    with rasterio.open(path) as new, rasterio.open(gdal_made) as old:
        assert new.overviews(1) == old.overviews(1) == [2]
        assert new.profile == old.profile
        assert (new.tags(), new.descriptions, new.scales, new.tags(3)) == (old.tags(), old.descriptions,
                                                                          old.scales, old.tags(3))
        full = new.read()
        np.testing.assert_array_equal(full, old.read())
        shape = (new.count, new.height // 2, new.width // 2)
        level2 = new.read(out_shape=shape)
        np.testing.assert_array_equal(level2, old.read(out_shape=shape))
    np.testing.assert_array_equal(level2, halve(full))
    assert not any(p.suffix == ".ovr" for p in path.parent.iterdir())


def test_coarser_levels_within_a_unit(tmp_path: Path) -> None:
    """Level 4+ is GDAL's averages of level 2: within 1 of GDAL's averages of the full resolution."""
    rng = np.random.default_rng(3)
    grid = Grid(CRS.from_epsg(32635), Affine(10, 0, 0, 0, -10, 0), 1200, 1100)
    a = rng.integers(1, 5000, (2, 1100, 1200)).astype(np.uint16)
    a[:, 300:420, 100:700] = 0
    stack = tmp_path / "stack.tif"
    with rasterio.open(stack, "w", driver="GTiff", width=1200, height=1100, count=2, dtype="uint16", nodata=0,
                       crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(a)
    half = HalfResolution(tmp_path / "half.tif", grid, 2)
    for row0 in range(0, 1100, 512):
        half.add(a[:, row0 : row0 + 512], row0)
    half.attach(stack)
    to_cog(stack, tmp_path / "ours.tif")
    (tmp_path / "stack.tif.ovr").unlink()  # attach made it (else "ours" would be GDAL's own, trivially equal)
    to_cog(stack, tmp_path / "gdal.tif")
    with rasterio.open(tmp_path / "ours.tif") as ours, rasterio.open(tmp_path / "gdal.tif") as gdal:
        assert ours.overviews(1) == gdal.overviews(1) == overview_factors(1200, 1100) == [2, 4]
        for f in (2, 4):
            shape = (2, -(-1100 // f), -(-1200 // f))
            diff = np.abs(ours.read(out_shape=shape).astype(int) - gdal.read(out_shape=shape).astype(int))
            assert diff.max() <= (0 if f == 2 else 1), f
