"""Publishing end to end: real PostGIS, real MapServer (CGI), real pygeoapi, real clients (ogrinfo, OWSLib).

Two published runs and one run still ``running`` are written with the ORM; ``refresh`` writes the configs;
the FastAPI app with ``mount`` runs under uvicorn on a free port.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from geoalchemy2.shape import from_shape
from publish_helpers import Server, get, getmap, ogrinfo_count, publish_settings, serve
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box
from sqlalchemy import delete, func, select, text

from amberwatch.publish import refresh
from amberwatch.publish.catalog import drop_run_views
from amberwatch.publish.connection import DbParams
from amberwatch.publish.ows import parse_cgi_output, query_string_with_alias
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, ModelVersion, Run, Scene, Site

# A corner of Rivne oblast no other test uses; dates no other test uses.
X0, Y0 = 25.310, 50.710
DAY_1 = datetime(2019, 6, 3, 9, 12, tzinfo=UTC)
DAY_2 = datetime(2019, 7, 18, 9, 5, tzinfo=UTC)
DAY_3 = datetime(2019, 8, 22, 9, 0, tzinfo=UTC)
CELL = 0.002  # degrees between objects (~140 m)


def square(x: float, y: float, size: float = 0.0012):
    return from_shape(MultiPolygon([box(x, y, x + size, y + size)]), srid=4326)


@dataclass
class Seed:
    scene_id: int
    model_id: int
    run_ids: list[int]  # published runs 1 and 2, then added ones
    running_id: int
    detections: dict[int, list[int]]  # run id -> detection ids
    site_ids: list[int]
    # where each run drew (lon, lat of the square centres)
    spots: dict[int, list[tuple[float, float]]]


def _add_run(session, seed: Seed, state: str, day: datetime, column: int, n: int = 3) -> int:
    run = Run(
        model_version_id=seed.model_id, state=state, parameters={}, n_detections=n,
        published_at=datetime.now(UTC) if state == "published" else None,
    )
    session.add(run)
    session.flush()
    seed.detections[run.id], seed.spots[run.id] = [], []
    for k in range(n):
        x, y = X0 + column * 3 * CELL, Y0 + k * CELL
        det = Detection(
            run_id=run.id, scene_id=seed.scene_id, cls="pit" if k % 2 == 0 else "pond", confidence=0.8,
            area_ha=1.4, observed_at=day, geom=square(x, y),
        )
        session.add(det)
        session.flush()
        seed.detections[run.id].append(det.id)
        seed.spots[run.id].append((x + 0.0006, y + 0.0006))
    return run.id


@pytest.fixture(scope="module")
def seed(store: Store):
    with store.session() as s:
        scene = Scene(
            scene_key="TEST_PUBLISH_S2_20190603", sensor="sentinel2", family="sentinel2", level="L2A",
            acquired=DAY_1, resolution=10.0, crs="EPSG:32635", bands=["B02", "B03", "B04", "B08"],
            cloud_fraction=0.0,
            footprint=from_shape(MultiPolygon([box(X0 - 0.05, Y0 - 0.05, X0 + 0.05, Y0 + 0.05)]), srid=4326),
            source="test_publish", reflectance_path="/nonexistent", stac_item={},
        )
        model = ModelVersion(name="test-publish", version="0.0.1", family="sentinel2", sha256="0" * 64,
                             card={}, metrics={})
        s.add_all([scene, model])
        s.flush()
        seed = Seed(scene.id, model.id, [], 0, {}, [], {})
        seed.run_ids.append(_add_run(s, seed, "published", DAY_1, column=0))
        seed.run_ids.append(_add_run(s, seed, "published", DAY_2, column=1))
        seed.running_id = _add_run(s, seed, "running", DAY_3, column=2)
        for i, (rid, status) in enumerate([(seed.run_ids[0], "active"), (seed.run_ids[1], "new")]):
            site = Site(
                geom=square(X0 + i * 3 * CELL - 0.0004, Y0 - 0.0004, 0.0052), status=status,
                first_seen=DAY_1, last_seen=DAY_2, last_observed=DAY_2, area_ha=3.0, max_area_ha=3.0,
                pit_area_ha=2.0, pond_area_ha=1.0, confidence=0.8, n_observations=2,
                first_run_id=seed.run_ids[0], last_run_id=rid,
            )
            s.add(site)
            s.flush()
            seed.site_ids.append(site.id)
    yield seed
    all_runs = [*seed.run_ids, seed.running_id]
    drop_run_views(store.engine, all_runs)
    with store.session() as s:
        s.execute(delete(Detection).where(Detection.run_id.in_(all_runs)))
        s.execute(delete(Site).where(Site.id.in_(seed.site_ids)))
        s.execute(delete(Run).where(Run.id.in_(all_runs)))
        s.execute(delete(ModelVersion).where(ModelVersion.id == seed.model_id))
        s.execute(delete(Scene).where(Scene.id == seed.scene_id))


@pytest.fixture(scope="module")
def server(store: Store, seed: Seed, tmp_path_factory: pytest.TempPathFactory):
    with serve(store, publish_settings(store, tmp_path_factory.mktemp("publish"))) as srv:
        yield srv


def db_count(store: Store, sql: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


# -- pure helpers -----------------------------------------------------------------------------------------------

def test_query_string_alias_replaces_client_map():
    qs = query_string_with_alias("SERVICE=WMS&map=/etc/passwd&MAP=x&REQUEST=GetMap&BBOX=1%2C2", "amberwatch")
    assert qs == "map=amberwatch&SERVICE=WMS&REQUEST=GetMap&BBOX=1%2C2"


def test_parse_cgi_output_status_and_headers():
    status, headers, body = parse_cgi_output(b"Status: 400 Bad Request\r\nContent-Type: text/xml\r\n\r\n<x/>")
    assert (status, headers, body) == (400, {"Content-Type": "text/xml"}, b"<x/>")
    assert parse_cgi_output(b"no headers at all")[0] == 502


def test_db_params_from_configured_url():
    st = Store(Settings(database_url="postgresql+psycopg2://gis:s%40cret@db.example:6543/aw?sslmode=require"))
    db = DbParams.from_store(st)
    assert (db.host, db.port, db.dbname, db.user, db.password) == ("db.example", 6543, "aw", "gis", "s@cret")
    assert "sslmode='require'" in db.libpq() and "password='s@cret'" in db.libpq()


# -- the served layers ------------------------------------------------------------------------------------------

def test_refresh_publishes_runs_as_layers(server: Server, seed: Seed):
    names = server.state.layers
    assert names[:2] == ("mining_sites", "detections")
    for rid in seed.run_ids:
        assert f"run_{rid}" in names
    assert f"run_{seed.running_id}" not in names
    assert {"2019-06-03", "2019-07-18"} <= set(server.state.time_extent)
    assert "2019-08-22" not in server.state.time_extent
    for path in (server.state.paths.mapfile, server.state.paths.pygeoapi_config, server.state.paths.openapi):
        assert path.stat().st_size > 0
    assert not list(server.state.paths.root.glob("*.tmp"))


def test_wfs_ogrinfo_mining_sites(server: Server, store: Store):
    count = ogrinfo_count(f"WFS:{server.url}/ows?", "mining_sites")
    assert count > 0
    assert count == db_count(store, "select count(*) from mining_sites")


def test_oapif_ogrinfo_mining_sites(server: Server, store: Store):
    assert ogrinfo_count(f"OAPIF:{server.url}/ogcapi", "mining_sites") == db_count(
        store, "select count(*) from mining_sites"
    )


def _getmap(server: Server, layer: str, bbox3857, size=(300, 200), time_=None) -> np.ndarray:
    return getmap(server.url, [layer], bbox3857, size, time_)


_TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
_BBOX_LL = (X0 - 0.002, Y0 - 0.002, X0 + 14 * CELL, Y0 + 4 * CELL)


def _bbox3857():
    x0, y0 = _TO_3857.transform(_BBOX_LL[0], _BBOX_LL[1])
    x1, y1 = _TO_3857.transform(_BBOX_LL[2], _BBOX_LL[3])
    return (x0, y0, x1, y1)


def _drawn_at(img: np.ndarray, lon: float, lat: float) -> bool:
    """Is anything drawn in a 3x3 pixel window around (lon, lat)?"""
    x0, y0, x1, y1 = _bbox3857()
    x, y = _TO_3857.transform(lon, lat)
    h, w = img.shape[:2]
    col, row = int((x - x0) / (x1 - x0) * w), int((y1 - y) / (y1 - y0) * h)
    return bool((img[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2, 3] > 0).any())


def test_wms_getmap_draws_sites(server: Server, seed: Seed):
    img = _getmap(server, "mining_sites", _bbox3857())
    assert _drawn_at(img, *seed.spots[seed.run_ids[0]][0])
    assert _drawn_at(img, *seed.spots[seed.run_ids[1]][0])
    assert not _drawn_at(img, X0 + 13 * CELL, Y0 + 3.5 * CELL)  # empty corner stays background
    assert 0 < (img[..., 3] > 0).mean() < 0.5


def test_wfs_geojson_per_run(server: Server, seed: Seed):
    from owslib.wfs import WebFeatureService

    wfs = WebFeatureService(f"{server.url}/ows", version="2.0.0")
    for rid in seed.run_ids:
        assert f"ms:run_{rid}" in wfs.contents or f"run_{rid}" in wfs.contents
        resp = wfs.getfeature(typename=[f"run_{rid}"], outputFormat="geojson")
        fc = json.loads(resp.read())
        assert fc["type"] == "FeatureCollection"
        assert sorted(f["properties"]["id"] for f in fc["features"]) == sorted(seed.detections[rid])
        assert {f["properties"]["run_id"] for f in fc["features"]} == {rid}
        assert {f["properties"]["model_version"] for f in fc["features"]} == {"test-publish@0.0.1"}
        assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in fc["features"])


def test_wms_time_dimension(server: Server, seed: Seed):
    status, _, caps = get(f"{server.url}/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")
    assert status == 200
    layer = caps.decode().split("<Name>detections</Name>", 1)[1].split("</Layer>", 1)[0]
    dim = re.search(r'<Dimension name="time"[^>]*default="([^"]+)"[^>]*>([^<]+)</Dimension>', layer)
    assert dim, layer
    default, extent = dim.groups()
    start, end, _ = extent.split("/")
    assert start <= "2019-06-03" and end >= "2019-07-18"
    assert default == server.state.time_extent[-1]

    run1, run2 = seed.run_ids
    img = _getmap(server, "detections", _bbox3857(), time_=DAY_1.strftime("%Y-%m-%d"))
    assert all(_drawn_at(img, *p) for p in seed.spots[run1])
    assert not any(_drawn_at(img, *p) for p in seed.spots[run2])
    img = _getmap(server, "detections", _bbox3857(), time_=DAY_2.strftime("%Y-%m-%d"))
    assert not any(_drawn_at(img, *p) for p in seed.spots[run1])
    assert all(_drawn_at(img, *p) for p in seed.spots[run2])


def test_ogcapi_items_per_run(server: Server, seed: Seed):
    for rid in seed.run_ids:
        status, _, body = get(f"{server.url}/ogcapi/collections/run_{rid}/items?f=json&limit=100")
        assert status == 200
        fc = json.loads(body)
        assert sorted(f["id"] for f in fc["features"]) == sorted(seed.detections[rid])
        assert fc["numberMatched"] == len(seed.detections[rid])
    # OGC API datetime filter on observed_at
    day = DAY_1.strftime("%Y-%m-%d")
    status, _, body = get(f"{server.url}/ogcapi/collections/detections/items?f=json&limit=1000"
                          f"&datetime={day}T00:00:00Z/{day}T23:59:59Z")
    assert status == 200, body[:300]
    ids = {f["id"] for f in json.loads(body)["features"]}
    assert set(seed.detections[seed.run_ids[0]]) <= ids and not set(seed.detections[seed.run_ids[1]]) & ids


def test_bad_requests_get_ogc_exceptions(server: Server):
    base = f"{server.url}/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&CRS=EPSG:4326&WIDTH=64&HEIGHT=64&STYLES="
    cases = {
        "unknown layer": base + "&FORMAT=image/png&LAYERS=no_such_layer&BBOX=50,25,51,26",
        "bad bbox": base + "&FORMAT=image/png&LAYERS=mining_sites&BBOX=a,b,c",
        "unknown typename": f"{server.url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=nope",
    }
    for case, url in cases.items():
        status, headers, body = get(url)
        assert status < 500, case
        assert "xml" in headers.get("content-type", "").lower(), case
        assert b"Exception" in body, (case, body[:300])
    status, _, body = get(f"{server.url}/ows")
    assert status == 400 and b"GetCapabilities" in body
    assert get(f"{server.url}/ogcapi/collections/no_such_collection?f=json")[0] == 404


def test_new_run_appears_without_restart_and_running_run_stays_hidden(server: Server, seed: Seed, store: Store):
    with store.session() as s:
        new_id = _add_run(s, seed, "published", DAY_3, column=3, n=2)
    seed.run_ids.append(new_id)
    state = refresh(store, server.settings)
    assert f"run_{new_id}" in state.layers

    _, _, body = get(f"{server.url}/ogcapi/collections?f=json")
    ids = {c["id"] for c in json.loads(body)["collections"]}
    assert f"run_{new_id}" in ids and f"run_{seed.running_id}" not in ids
    _, _, caps = get(f"{server.url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities")
    assert f"run_{new_id}</Name>".encode() in caps and f"run_{seed.running_id}</Name>".encode() not in caps
    _, _, body = get(f"{server.url}/ogcapi/collections/run_{new_id}/items?f=json")
    assert sorted(f["id"] for f in json.loads(body)["features"]) == sorted(seed.detections[new_id])

    # the running run's detections are in no layer
    hidden = set(seed.detections[seed.running_id])
    _, _, body = get(f"{server.url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=detections"
                     f"&OUTPUTFORMAT=geojson&BBOX={_BBOX_LL[1]},{_BBOX_LL[0]},{_BBOX_LL[3]},{_BBOX_LL[2]},"
                     "urn:ogc:def:crs:EPSG::4326")
    wfs_ids = {f["properties"]["id"] for f in json.loads(body)["features"]}
    assert set(seed.detections[new_id]) <= wfs_ids and not hidden & wfs_ids
    _, _, body = get(f"{server.url}/ogcapi/collections/detections/items?f=json&limit=1000"
                     f"&bbox={','.join(map(str, _BBOX_LL))}")
    api_ids = {f["id"] for f in json.loads(body)["features"]}
    assert set(seed.detections[new_id]) <= api_ids and not hidden & api_ids
    with store.engine.connect() as conn:
        published = conn.execute(select(func.count()).select_from(text("published_detections"))
                                 .where(text(f"run_id = {seed.running_id}"))).scalar_one()
    assert published == 0


def test_requests_during_refresh_see_old_or_new_config(server: Server, store: Store):
    """Requests keep succeeding with a complete layer list while refresh rewrites the configs."""
    errors: list[str] = []
    done = threading.Event()

    def hammer():
        while not done.is_set():
            status, _, caps = get(f"{server.url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities")
            if status != 200 or b"mining_sites</Name>" not in caps or b"</wfs:WFS_Capabilities>" not in caps:
                errors.append(f"ows {status} {caps[:200]!r}")
            status, _, body = get(f"{server.url}/ogcapi/collections?f=json")
            if status != 200 or "mining_sites" not in {c["id"] for c in json.loads(body)["collections"]}:
                errors.append(f"ogcapi {status} {body[:200]!r}")

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for w in workers:
        w.start()
    for _ in range(4):
        refresh(store, server.settings)
    done.set()
    for w in workers:
        w.join()
    assert not errors, errors[:3]
