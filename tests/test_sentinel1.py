"""Sentinel-1: ingest (OPERA RTC GeoTIFFs, a dB GeoTIFF, GRD .SAFE metadata and σ0 calibration), the Lee filter,
the s1-water ONNX model, the log-ratio change map and the tracking rule, on the real pixels of ../shared/data."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO, shared
from rasterio.control import GroundControlPoint
from rasterio.transform import from_origin

from amberwatch.detect.registry import list_models
from amberwatch.errors import InputError
from amberwatch.ingest import plan_input
from amberwatch.ingest.s1_safe import calibrate_sigma0, read_grd_sigma0, read_safe
from amberwatch.ingest.safety import IngestLimits
from amberwatch.ingest.sentinel1 import ingest_s1
from amberwatch.sar.change import change_map
from amberwatch.sar.speckle import lee_filter
from amberwatch.sar.water import WaterModel, filtered_db, learn_thresholds, water_mask
from amberwatch.track import rules

OPERA = ("sentinel1", "opera-rtc-s1-dist-s1", "10SGD", "137")
SEA, LAND = "T137-292321-IW1", "T137-292321-IW2"  # an offshore and an inland burst of the same track
CAMARGUE_POND = (slice(80, 100), slice(110, 150))  # rows, cols of the pond complex (docs/img/s1-camargue.png)
CAMARGUE_LAND = (slice(0, 40), slice(0, 40))  # fields north-west of it


def opera_file(date: str, burst: str, pol: str = "VV") -> Path:
    folder = shared(*OPERA, date)
    found = sorted(folder.glob(f"*{burst}_*_{pol}.tif"))
    assert len(found) == 1, (date, burst, pol)
    return found[0]


@pytest.fixture(scope="module")
def water_model() -> WaterModel:
    model = next(m for m in list_models(REPO / "models" / "registry") if m.name == "s1-water")
    assert model.family == "sentinel1"
    return WaterModel(model.onnx_path, ["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def opera_dates(water_model: WaterModel) -> dict[str, tuple[dict, dict]]:
    """date -> ({burst: filtered dB}, {burst: water mask}) with thresholds learned over all 15 bursts of the date."""
    out = {}
    for date in ("2021-12-19", "2022-11-14", "2022-12-20"):
        files = sorted(shared(*OPERA, date).glob("*_VV.tif"))
        dbs = {f.name.split("_")[3]: filtered_db(ingest_s1(f)) for f in files}
        thresholds = learn_thresholds(list(dbs.values()))
        out[date] = (dbs, {b: water_mask(water_model.probability(d, thresholds)) for b, d in dbs.items()})
    return out


# -- ingest ------------------------------------------------------------------------------------------------
def test_opera_rtc_pair_ingested_linear_gamma0() -> None:
    vv = opera_file("2021-12-19", LAND)
    scene = ingest_s1(vv)  # the VH sibling is found by name
    assert list(scene.bands) == ["VV", "VH"] and scene.quantity == "gamma0" and scene.product == "RTC"
    assert scene.sensor == "sentinel1b" and scene.acquired == datetime(2021, 12, 19, 1, 58, 20, tzinfo=UTC)
    assert scene.grid.width == scene.grid.height == 100 and scene.grid.crs.to_epsg() == 32611
    with rasterio.open(vv) as src:
        np.testing.assert_array_equal(scene.bands["VV"], src.read(1))  # linear power kept as is
    assert np.nanmedian(scene.db("VH")) < np.nanmedian(scene.db("VV")) - 5  # cross-pol is darker
    assert ingest_s1([vv]).bands.keys() == {"VV", "VH"}


def test_db_geotiff_converted_to_linear() -> None:
    tif = next(shared("sentinel1", "pyrosar-gamma-geo-vv").glob("*_db.tif"))
    scene = ingest_s1(tif)
    with rasterio.open(tif) as src:
        db = src.read(1)
    assert scene.properties["amberwatch:input_units"] == ["dB"] and scene.sensor == "sentinel1a"
    np.testing.assert_allclose(scene.db("VV"), db, atol=1e-4)
    assert float(np.nanmin(scene.bands["VV"])) > 0


def test_bad_backscatter_geotiffs_refused(tmp_path: Path) -> None:
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "float32", "crs": "EPSG:32635",
               "transform": from_origin(500000, 5700000, 10, 10)}
    nopol = tmp_path / "S1A_20200101_backscatter.tif"
    with rasterio.open(nopol, "w", **profile) as dst:
        dst.write(np.full((1, 8, 8), 0.05, dtype=np.float32))
    with pytest.raises(InputError, match="no polarisation"):
        ingest_s1(nopol)
    mixed = tmp_path / "S1A_20200101_VV.tif"
    data = np.full((1, 8, 8), 0.05, dtype=np.float32)
    data[0, 0, 0] = -0.5  # mostly positive: not dB, but negative power
    with rasterio.open(mixed, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(InputError, match="negative linear backscatter"):
        ingest_s1(mixed)
    with rasterio.open(mixed, "w", **profile) as dst:
        dst.write(np.full((1, 8, 8), 0.05, dtype=np.float32))
    other = tmp_path / "S1A_20200101_VH.tif"
    with rasterio.open(other, "w", **{**profile, "width": 9}) as dst:
        dst.write(np.full((1, 8, 9), 0.01, dtype=np.float32))
    with pytest.raises(InputError, match="not on the same grid") as err:
        ingest_s1([mixed, other])
    assert str(tmp_path) not in str(err.value)


# -- GRD .SAFE ---------------------------------------------------------------------------------------------
def test_safe_metadata_read_and_metadata_only_refused() -> None:
    zipped = next(shared("sentinel1", "pyrosar-gamma-geo-vv").glob("*.zip"))
    product = read_safe(zipped)
    assert (product.mission, product.mode, product.product_type) == ("S1A", "IW", "GRD")
    assert product.polarisations == ["VV", "VH"] and product.pass_direction == "DESCENDING"
    assert product.acquired.date().isoformat() == "2021-01-19" and (product.lines, product.samples) == (16854, 25931)
    assert product.calibration["VV"].values.shape == (27, 650) and not product.measurement
    with pytest.raises(InputError, match="metadata only") as err:
        ingest_s1(zipped)
    with pytest.raises(InputError, match="is Sentinel-1 radar data"):
        plan_input(zipped)  # the optical ingest says what it is instead of "no MTD_MSIL*.xml"
    assert str(zipped.parent) not in str(err.value)


def test_safe_placeholder_measurement_refused() -> None:
    safe = next(shared("sentinel1", "sarsen-grd-safe-metadata").glob("*.SAFE"))
    product = read_safe(safe)
    assert product.mission == "S1B" and product.polarisations == ["VV"]  # the VH files are not in the sample
    lut = product.calibration["VV"]
    assert lut.values.shape == (27, 654) and lut.lines[-1] >= product.lines - 1
    with pytest.raises(InputError, match="AMBERWATCH_MAX_PIXELS"):  # 26102 x 16705 > the default limit
        read_grd_sigma0(product, "VV")
    with pytest.raises(InputError, match="all zero: a placeholder"):
        read_grd_sigma0(product, "VV", IngestLimits(max_pixels=500_000_000))


def _bilinear_by_hand(lut, row: float, col: float) -> float:
    i = max(k for k in range(len(lut.lines) - 1) if lut.lines[k] <= row)
    j = max(k for k in range(len(lut.pixels) - 1) if lut.pixels[k] <= col)
    u = (row - lut.lines[i]) / (lut.lines[i + 1] - lut.lines[i])
    v = (col - lut.pixels[j]) / (lut.pixels[j + 1] - lut.pixels[j])
    a = lut.values
    return float((1 - u) * (1 - v) * a[i, j] + (1 - u) * v * a[i, j + 1] + u * (1 - v) * a[i + 1, j]
                 + u * v * a[i + 1, j + 1])


def test_sigma0_calibration_against_the_real_lut(tmp_path: Path) -> None:
    src = next(shared("sentinel1", "sarsen-grd-safe-metadata").glob("*.SAFE"))
    lut = read_safe(src).calibration["VV"]
    rng = np.random.default_rng(7)
    # A window straddling a LUT line and a LUT column, deep inside the image.
    row0, col0 = int(lut.lines[5]) - 7, int(lut.pixels[100]) - 9
    dn = rng.integers(1, 900, size=(16, 20)).astype(np.uint16)
    got = calibrate_sigma0(dn, lut, row0, col0)
    for r, c in [(0, 0), (7, 9), (15, 19), (3, 12)]:
        a = _bilinear_by_hand(lut, row0 + r, col0 + c)
        assert got[r, c] == pytest.approx(float(dn[r, c]) ** 2 / a**2, rel=1e-6)
    node = calibrate_sigma0(np.array([[100]], dtype=np.uint16), lut, int(lut.lines[3]), int(lut.pixels[40]))
    assert node[0, 0] == pytest.approx(100.0**2 / lut.values[3, 40] ** 2, rel=1e-6)  # exact at a LUT node

    # The whole path: a copy of the real .SAFE with a small synthetic measurement (GCP-georeferenced) in it.
    safe = tmp_path / src.name
    shutil.copytree(src, safe, ignore=shutil.ignore_patterns("*.tiff"))
    measurement = next((src / "measurement").glob("*.tiff")).name
    h, w = 24, 32
    pixels = rng.integers(1, 600, size=(h, w)).astype(np.uint16)
    pixels[0, 0] = 0  # no data
    gcps = [GroundControlPoint(row, col, 12.0 + col * 1e-4, 41.8 - row * 1e-4) for row in (0, h) for col in (0, w)]
    with rasterio.open(safe / "measurement" / measurement, "w", driver="GTiff", width=w, height=h, count=1,
                       dtype="uint16", gcps=gcps, crs="EPSG:4326") as dst:
        dst.write(pixels, 1)
    scene = ingest_s1(safe)
    assert scene.product == "GRD" and scene.quantity == "sigma0" and scene.bands["VV"].shape == (h // 4, w // 4)
    sigma = np.array([[float(pixels[r, c]) ** 2 / _bilinear_by_hand(lut, r, c) ** 2 if pixels[r, c] else np.nan
                       for c in range(w)] for r in range(h)])
    expected = np.nanmean(sigma.reshape(h // 4, 4, w // 4, 4), axis=(1, 3))
    np.testing.assert_allclose(scene.bands["VV"], expected, rtol=1e-5)
    assert scene.grid.transform.a == pytest.approx(4e-4) and scene.grid.crs.to_epsg() == 4326


# -- speckle -----------------------------------------------------------------------------------------------
def test_lee_filter_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    truth = np.where(np.arange(21)[None, :] < 10, 0.02, 0.2) * np.ones((21, 21))
    img = truth * rng.gamma(4.4, 1 / 4.4, size=truth.shape)  # 4.4-look speckle
    out = lee_filter(img, size=5, enl=4.4)
    cu2 = 1 / 4.4
    for r, c in [(10, 3), (10, 10), (5, 16), (12, 9)]:
        win = img[r - 2 : r + 3, c - 2 : c + 3]
        m, v = win.mean(), win.var()
        vx = max((v - m * m * cu2) / (1 + cu2), 0.0)
        expected = m + (vx / v) * (img[r, c] - m)
        assert out[r, c] == pytest.approx(expected, rel=1e-4)
    flat = rng.gamma(4.4, 0.05 / 4.4, size=(64, 64))
    smooth = lee_filter(flat)
    assert smooth.std() / smooth.mean() < 0.5 * flat.std() / flat.mean()  # speckle reduced on a flat area
    holed = img.copy()
    holed[4, 4] = np.nan
    assert np.isnan(lee_filter(holed)[4, 4]) and np.isfinite(lee_filter(holed)[4, 5])


# -- water ------------------------------------------------------------------------------------------------
def test_camargue_ponds_are_water_and_fields_are_not(water_model: WaterModel) -> None:
    scene = ingest_s1(next(shared("sentinel1", "pyrosar-gamma-geo-vv").glob("*_db.tif")))
    db = filtered_db(scene)
    thresholds = learn_thresholds([db])
    assert -24.0 <= thresholds.db["VV"] <= -15.0
    water = water_mask(water_model.probability(db, thresholds))
    pond_vv, land_vv = db["VV"][CAMARGUE_POND], db["VV"][CAMARGUE_LAND]
    assert water[CAMARGUE_POND].mean() >= 0.8
    assert water[CAMARGUE_LAND].mean() <= 0.02
    assert np.nanmedian(pond_vv) < np.nanmedian(land_vv) - 8.0
    assert 0.10 < water.mean() < 0.40  # the marsh and its ponds, not the whole scene


def test_water_model_is_the_threshold_rule(water_model: WaterModel, opera_dates) -> None:
    dbs, _ = opera_dates["2021-12-19"]
    db = dbs[SEA]
    thresholds = learn_thresholds([db])
    prob = water_model.probability(db, thresholds)
    rule = (db["VV"] < thresholds.db["VV"]) & (db["VH"] < thresholds.db["VH"])
    margin = np.minimum(thresholds.db["VV"] - db["VV"], thresholds.db["VH"] - db["VH"])
    clear = np.abs(margin) > 1e-3  # not exactly on a threshold
    np.testing.assert_array_equal(water_mask(prob)[clear], rule[clear])
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-margin)), atol=1e-6)


def test_opera_sea_is_water_and_land_is_not(opera_dates) -> None:
    dbs, water = opera_dates["2021-12-19"]
    assert water[SEA].mean() > 0.9 and water[LAND].mean() < 0.01
    assert np.nanmedian(dbs[SEA]["VV"]) < np.nanmedian(dbs[LAND]["VV"]) - 5.0
    assert np.nanmedian(dbs[SEA]["VH"]) < np.nanmedian(dbs[LAND]["VH"]) - 8.0


def test_change_map_between_dates(opera_dates) -> None:
    (db1, w1), (db2, w2), (db3, w3) = (opera_dates[d] for d in ("2021-12-19", "2022-11-14", "2022-12-20"))
    stable = change_map(db1[LAND], db3[LAND], w1[LAND], w3[LAND])  # same season, one year apart
    assert stable.polarisation == "VH" and stable.threshold_db >= 3.0
    assert stable.fraction("stable") > 0.9 and stable.fraction("water_appeared") == 0.0
    windy = change_map(db1[SEA], db2[SEA], w1[SEA], w2[SEA])  # 2022-11-14: wind-roughened sea, bright
    assert windy.fraction("water_disappeared") > 0.5
    assert np.nanmedian(windy.log_ratio_db) > 1.0  # brighter


# -- tracking ------------------------------------------------------------------------------------------------
def test_sar_status_rule() -> None:
    """The rule alone; the hectares of radar change come from PostGIS (tests/test_sentinel1_track.py)."""

    def obs(day: int, detected: bool = True, pit: float = 1.0, sar: float | None = None) -> rules.Observation:
        return rules.Observation(datetime(2024, 1, day, tzinfo=UTC), day, detected, 0.9, pit, 0.0, 2.0,
                                 sar_change_ha=sar)

    history = [obs(1), obs(2, pit=0.2), obs(3, sar=0.0), obs(4, sar=1.0), obs(5, pit=0.2)]
    rules.assign_statuses(history)
    assert [o.status for o in history] == ["new", "abandoned", "abandoned", "active", "abandoned"]
    assert rules.sar_status("recovering", 0.04) == "recovering" and rules.sar_status("recovering", 0.05) == "active"
    with pytest.raises(ValueError):
        rules.assign_statuses([obs(1, sar=1.0)])


# -- hostile input -------------------------------------------------------------------------------------------
def _safe_copy(tmp_path: Path) -> Path:
    src = next(shared("sentinel1", "sarsen-grd-safe-metadata").glob("*.SAFE"))
    safe = tmp_path / src.name
    shutil.copytree(src, safe, ignore=shutil.ignore_patterns("*.tiff"))
    return safe


def test_hostile_safe_refused(tmp_path: Path) -> None:
    safe = _safe_copy(tmp_path / "a")
    cal = next((safe / "annotation" / "calibration").glob("calibration-*.xml"))
    cal.write_text('<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><calibration>&x;'
                   "</calibration>")
    with pytest.raises(InputError, match="XML features that are not accepted"):
        ingest_s1(safe)

    safe = _safe_copy(tmp_path / "b")
    manifest = safe / "manifest.safe"
    manifest.write_text(manifest.read_text().replace('href="./annotation/calibration/calibration-',
                                                     'href="../../../etc/calibration-', 1))
    with pytest.raises(InputError, match="absolute path or '..'"):
        ingest_s1(safe)

    safe = _safe_copy(tmp_path / "c")
    cal = next((safe / "annotation" / "calibration").glob("calibration-*.xml"))
    outside = tmp_path / "outside.xml"
    outside.write_bytes(cal.read_bytes())
    cal.unlink()
    cal.symlink_to(outside)
    with pytest.raises(InputError, match="points outside the input") as err:
        ingest_s1(safe)
    assert str(tmp_path) not in str(err.value)

    vrt = tmp_path / "S1A_20200101_VV.tif"
    vrt.write_text('<VRTDataset rasterXSize="1" rasterYSize="1"><VRTRasterBand dataType="Float32" band="1">'
                   "<SimpleSource><SourceFilename>/etc/passwd</SourceFilename></SimpleSource></VRTRasterBand>"
                   "</VRTDataset>")
    with pytest.raises(InputError, match="VRT"):
        ingest_s1(vrt)
    with pytest.raises(InputError, match="virtual paths"):
        ingest_s1("/vsicurl/http://example.com/S1A_20200101_VV.tif")
