"""The monitoring layers end to end: real PostGIS, real MapServer (CGI), real pygeoapi under uvicorn, real clients.

Four sites are made the way production makes them: hand-made ``DetectionResult`` objects go through
``pipeline.publish_result``, so the real ``track.update_sites`` creates sites, observations and events. A tiny
oblast/raion layer and a protected area are loaded with ``usecases.monitoring.load_layer`` from GeoJSON files. The
hromada layer stays empty on purpose (an empty layer must not break anything); a second, empty database checks
that every layer is served before anything was published.

Layout (metres east of ORIGIN, 150 m squares): A at 0 (pit 2021-05-10, bigger pit 2021-08-20: new -> active),
B at 1500 (pit on the first date only: new -> recovering), C at 3000 (pit on the second date only: new, inside the
protected area), D at 4500 (pit on the first date; the second scene does not cover D: new).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from publish_helpers import (
    Server,
    get,
    getmap,
    ogrinfo_counts,
    ogrinfo_fields,
    publish_polygons,
    publish_settings,
    serve,
)
from pyproj import Transformer
from shapely.geometry import Point, box, mapping
from sqlalchemy import text

from amberwatch.publish.catalog import REGION_EXTENT
from amberwatch.publish.layers import LICENSE
from amberwatch.publish.render import find_label_font
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.track.geo import to_metric, to_wgs84
from amberwatch.usecases.monitoring import load_layer

ORIGIN = (26.30, 51.45)  # Rivne oblast, in the amber belt
T1 = datetime(2021, 5, 10, 9, 20, tzinfo=UTC)
T2 = datetime(2021, 8, 20, 9, 10, tzinfo=UTC)
A, B, C, D = 0.0, 1500.0, 3000.0, 4500.0
SIDE = 150.0
MONITORING_LAYERS = ("events", "site_history", "oblasts", "raions", "hromadas", "protected_areas")
STATUS_RGB = {"new": (227, 26, 28), "active": (253, 141, 60), "abandoned": (150, 150, 150),
              "recovering": (65, 171, 93)}


def rect(dx: float, dy: float, w: float, h: float):
    """A w x h metre rectangle whose south-west corner is (dx, dy) metres from ORIGIN (EPSG:4326)."""
    o = to_metric(Point(ORIGIN))
    return to_wgs84(box(o.x + dx, o.y + dy, o.x + dx + w, o.y + dy + h))


def centre(dx: float, dy: float = 0.0) -> tuple[float, float]:
    p = rect(dx, dy, SIDE, SIDE).centroid
    return p.x, p.y


# what each scene shows: site x offset -> (width in metres); the T2 scene does not reach D
SCENES = {
    T1: ({A: SIDE, B: SIDE, D: SIDE}, rect(-1000, -1000, 7000, 2000)),
    T2: ({A: 2 * SIDE, C: SIDE}, rect(-1000, -1000, 5000, 2000)),
}
EXPECTED = {
    "mining_sites": 4, "events": 6, "site_history": 5,  # B on T2: observed, nothing detected -> no geometry
    "oblasts": 2, "raions": 1, "hromadas": 0, "protected_areas": 1,
}


@pytest.fixture(scope="module")
def db(make_database) -> Store:
    st = Store(Settings(database_url=make_database("amberwatch_publish_monitoring"))).start()
    yield st
    st.stop()


def _publish_scene(db: Store, settings: Settings, when: datetime) -> int:
    widths, footprint = SCENES[when]
    polys = [rect(dx, 0, w, SIDE) for dx, w in widths.items()]
    return publish_polygons(db, settings, f"TEST_PUBMON_{when:%Y%m%d}", when, footprint, polys)


def _geojson(path: Path, features: list[tuple[dict, object]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": mapping(geom)} for props, geom in features]}))
    return path


@dataclass
class Monitored:
    server: Server
    store: Store


@pytest.fixture(scope="module")
def monitored(db: Store, tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    tmp = tmp_path_factory.mktemp("publish-monitoring")
    settings = publish_settings(db, tmp / "data")
    for when in (T1, T2):
        _publish_scene(db, settings, when)
    oblasts = _geojson(tmp / "oblasts.geojson", [
        ({"shapeName": "Рівненська", "shapeISO": "UA-56"}, rect(-1000, -1000, 3250, 2000)),
        ({"shapeName": "Волинська", "shapeISO": "UA-07"}, rect(2250, -1000, 3750, 2000)),
    ])
    raions = _geojson(tmp / "raions.geojson", [({"shapeName": "Сарненський"}, rect(-1000, -1000, 7000, 2000))])
    protected = _geojson(tmp / "ramsar-test.geojson", [
        ({"name_en": "Test Bog", "category": "Ramsar site"}, rect(C - 300, -300, SIDE + 600, SIDE + 600))])
    with db.session() as s:
        assert load_layer(s, "oblast", [oblasts]) == 2
        assert load_layer(s, "raion", [raions]) == 1
        assert load_layer(s, "protected_area", [protected]) == 1
    with serve(db, settings) as server:  # refresh again: the layers loaded after the last publish
        yield Monitored(server, db)


def db_rows(store: Store, sql: str) -> list:
    with store.engine.connect() as conn:
        return conn.execute(text(sql)).all()


# -- feature counts through the real clients ----------------------------------------------------------------------

def test_monitoring_data_is_what_track_made(monitored: Monitored):
    """The fixture's expectations hold in the database (so the counts below test publishing, not tracking)."""
    rows = db_rows(monitored.store, "select to_char(observed_at, 'YYYY-MM-DD'), to_status from site_events")
    assert sorted(rows) == sorted([("2021-05-10", "new")] * 3 + [("2021-08-20", "active"), ("2021-08-20", "new"),
                                                                  ("2021-08-20", "recovering")])
    statuses = db_rows(monitored.store, "select status, in_protected_area, oblast from mining_sites order by site_id")
    assert sorted(s for s, _, _ in statuses) == ["active", "new", "new", "recovering"]
    assert sum(1 for _, inside, _ in statuses if inside) == 1
    assert {o for _, _, o in statuses} == {"Рівненська", "Волинська"}
    assert db_rows(monitored.store, "select count(*) from site_history")[0][0] == 6


def test_feature_counts_wfs_and_ogcapi(monitored: Monitored):
    url, state = monitored.server.url, monitored.server.state
    layers = list(EXPECTED)
    assert {**state.counts, "mining_sites": state.n_sites} == EXPECTED
    assert ogrinfo_counts(f"WFS:{url}/ows?", layers) == EXPECTED, "WFS 2.0"
    assert ogrinfo_counts(f"OAPIF:{url}/ogcapi", layers) == EXPECTED, "OGC API Features"


def test_mining_sites_carry_every_attribute(monitored: Monitored):
    """Every column of the view mining_sites reaches WFS and OGC API clients, with its value."""
    columns = [r[0] for r in db_rows(monitored.store, (
        "select column_name from information_schema.columns where table_name = 'mining_sites' "
        "and column_name <> 'geom' order by ordinal_position"))]
    assert {"status_since", "growth_rate_ha_yr", "disturbance", "in_protected_area", "protected_distance_m"} \
        <= set(columns)
    url = monitored.server.url
    assert set(columns) <= set(ogrinfo_fields(f"WFS:{url}/ows?", "mining_sites"))
    # pygeoapi moves the id column (site_id) into the feature id (OGR's FID)
    assert set(columns) - {"site_id"} <= set(ogrinfo_fields(f"OAPIF:{url}/ogcapi", "mining_sites"))

    _, _, body = get(f"{url}/ogcapi/collections/mining_sites/items?f=json&limit=10")
    api = {f["id"]: f["properties"] for f in json.loads(body)["features"]}
    _, _, body = get(f"{url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=mining_sites"
                     "&OUTPUTFORMAT=geojson")
    wfs = {f["properties"]["site_id"]: f["properties"] for f in json.loads(body)["features"]}
    assert set(api) == set(wfs) and len(api) == EXPECTED["mining_sites"]
    inside = [sid for sid, p in api.items() if p["in_protected_area"] is True]
    assert len(inside) == 1 and api[inside[0]]["protected_areas"] == "Test Bog"
    assert wfs[inside[0]]["protected_areas"] == "Test Bog"
    assert {p["in_protected_area"] for sid, p in wfs.items() if sid != inside[0]} == {"false"}
    assert wfs[inside[0]]["in_protected_area"] == "true"  # MapServer's GeoJSON wrote 0 for true as a boolean
    assert {p["oblast"] for p in wfs.values()} == {"Рівненська", "Волинська"}
    assert {p["status"] for p in api.values()} == {"new", "active", "recovering"}


# -- WMS ----------------------------------------------------------------------------------------------------------

def _layer_caps(caps: str, name: str) -> str:
    return caps.split(f"<Name>{name}</Name>", 1)[1].split("</Layer>", 1)[0]


def test_wms_capabilities_time_titles_and_licence(monitored: Monitored):
    status, _, body = get(f"{monitored.server.url}/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")
    assert status == 200
    caps = body.decode()
    assert LICENSE in html.unescape(caps)
    for name in ("mining_sites", *MONITORING_LAYERS):
        assert f"<Name>{name}</Name>" in caps, name
    events = _layer_caps(caps, "events")
    dim = re.search(r'<Dimension name="time"[^>]*default="([^"]+)"[^>]*>([^<]+)</Dimension>', events)
    assert dim, events
    assert dim.group(1) == "2021-08-20" and dim.group(2).startswith("2021-05-10/2021-08-20")
    assert "docs/monitoring.md" in events and "recovering" in events
    assert '<Dimension name="time"' in _layer_caps(caps, "site_history")
    sites = re.search(r'<Dimension name="time"[^>]*>([^<]+)</Dimension>', _layer_caps(caps, "mining_sites"))
    assert sites and sites.group(1).startswith("2021-05-10/2021-08-20")
    assert '<Dimension name="time"' not in _layer_caps(caps, "oblasts")


_TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
VIEW_LL = (*rect(-500, -400, 5650, 950).bounds,)  # the four sites, ~11 m per pixel at 500 px wide
VIEW_SIZE = (500, 85)


def _bbox3857(ll=VIEW_LL):
    x0, y0 = _TO_3857.transform(ll[0], ll[1])
    x1, y1 = _TO_3857.transform(ll[2], ll[3])
    return (x0, y0, x1, y1)


def _pixel(img: np.ndarray, lon: float, lat: float, ll=VIEW_LL) -> tuple[int, int]:
    x0, y0, x1, y1 = _bbox3857(ll)
    x, y = _TO_3857.transform(lon, lat)
    h, w = img.shape[:2]
    return int((y1 - y) / (y1 - y0) * h), int((x - x0) / (x1 - x0) * w)


def _drawn_at(img: np.ndarray, lon: float, lat: float) -> bool:
    row, col = _pixel(img, lon, lat)
    return bool((img[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2, 3] > 0).any())


def _getmap(server: Server, layers: list[str], time_=None, ll=VIEW_LL, size=VIEW_SIZE) -> np.ndarray:
    return getmap(server.url, layers, _bbox3857(ll), size, time_)


def test_wms_events_time_selects_that_dates_events(monitored: Monitored):
    events = db_rows(monitored.store, "select to_char(observed_at, 'YYYY-MM-DD'), st_x(geom), st_y(geom) "
                                      "from site_events")
    by_day = {day: [(x, y) for d, x, y in events if d == day] for day in ("2021-05-10", "2021-08-20")}
    for day, other in (("2021-05-10", "2021-08-20"), ("2021-08-20", "2021-05-10")):
        img = _getmap(monitored.server, ["events"], time_=day)
        assert all(_drawn_at(img, *p) for p in by_day[day]), day
        # the other date's events that are not on top of one of this date's events (C or D) stay background
        alone = [p for p in by_day[other] if all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > 0.005 for q in by_day[day])]
        assert len(alone) == 1, alone
        assert not _drawn_at(img, *alone[0]), (day, alone)
    # no TIME: the default, the latest date (C drawn, D not)
    img = _getmap(monitored.server, ["events"])
    assert _drawn_at(img, *centre(C)) and not _drawn_at(img, *centre(D))


def _rgb_near(img: np.ndarray, lon: float, lat: float, rgb: tuple[int, int, int], tol: int = 40) -> bool:
    row, col = _pixel(img, lon, lat)
    px = img[row, col]
    return px[3] > 0 and all(abs(int(px[i]) - rgb[i]) <= tol for i in range(3))


def test_wms_mining_sites_coloured_by_status_and_not_filtered_by_time(monitored: Monitored):
    img = _getmap(monitored.server, ["mining_sites"])  # no TIME: every site, whatever its first_seen
    for dx, status in ((A, "active"), (B, "recovering"), (C, "new"), (D, "new")):
        assert _rgb_near(img, *centre(dx), STATUS_RGB[status]), (dx, status, img[_pixel(img, *centre(dx))])
    img = _getmap(monitored.server, ["mining_sites"], time_="2021-08-20")  # first seen that day: C only
    assert _drawn_at(img, *centre(C)) and not _drawn_at(img, *centre(A)) and not _drawn_at(img, *centre(D))


def test_wms_reference_layers_styles(monitored: Monitored):
    # protected area: transparent green fill with a hatch (two alpha levels), C's neighbours untouched
    ll = (*rect(C - 400, -400, SIDE + 800, SIDE + 800).bounds,)
    img = _getmap(monitored.server, ["protected_areas"], ll=ll, size=(200, 200))
    inner = img[60:140, 60:140].astype(int)
    assert (inner[..., 3] > 0).all()
    assert (inner[..., 1] > inner[..., 0] + 50).mean() > 0.8  # green (the white halo of the name label aside)
    alpha = np.bincount(inner[..., 3].ravel(), minlength=256)
    assert (alpha > 0.02 * alpha.sum()).sum() >= 2  # hatch lines over the light fill: two common alpha levels
    assert (img[:8, :8, 3] == 0).all()  # outside the area

    # oblasts: outlines, no fill
    ll = (*rect(-1200, -1200, 7400, 2400).bounds,)
    img = _getmap(monitored.server, ["oblasts"], ll=ll, size=(600, 200))
    assert 0 < (img[..., 3] > 0).mean() < 0.1
    # ... and a name label: inside the western oblast, away from its borders, only the label is drawn
    ll = (*rect(-200, -300, 1500, 600).bounds,)
    img = _getmap(monitored.server, ["oblasts"], ll=ll, size=(300, 150))
    drawn = img[..., 3] > 0
    if find_label_font() is None:
        assert not drawn.any()
    else:
        assert 0.005 < drawn.mean() < 0.2, drawn.mean()
        rows, cols = np.nonzero(drawn)
        assert abs(rows.mean() - 75) < 20 and abs(cols.mean() - 150) < 40  # centred on the (clipped) polygon


def test_wms_empty_layer_and_all_layers_together(monitored: Monitored):
    img = _getmap(monitored.server, ["hromadas"])
    assert (img[..., 3] == 0).all()
    img = _getmap(monitored.server, ["mining_sites", *MONITORING_LAYERS])
    assert (img[..., 3] > 0).any()


# -- OGC API Features ---------------------------------------------------------------------------------------------

def test_ogcapi_events_datetime_and_metadata(monitored: Monitored):
    url = monitored.server.url
    status, _, body = get(f"{url}/ogcapi/collections/events/items?f=json&limit=100"
                          "&datetime=2021-05-10T00:00:00Z/2021-05-10T23:59:59Z")
    assert status == 200, body[:300]
    fc = json.loads(body)
    assert fc["numberMatched"] == 3 and {f["properties"]["to_status"] for f in fc["features"]} == {"new"}
    assert all(f["geometry"]["type"] == "Point" for f in fc["features"])
    _, _, body = get(f"{url}/ogcapi/collections/events?f=json")
    meta = json.loads(body)
    assert "docs/monitoring.md" in meta["description"]
    assert meta["extent"]["temporal"]["interval"][0][0].startswith("2021-05-10")
    _, _, body = get(f"{url}/ogcapi/collections/oblasts/items?f=json")
    assert sorted(f["properties"]["name"] for f in json.loads(body)["features"]) == ["Волинська", "Рівненська"]
    _, _, body = get(f"{url}/ogcapi/openapi?f=json")
    assert json.loads(body)["info"]["license"]["name"] == LICENSE


# -- nothing published, nothing loaded ----------------------------------------------------------------------------

def test_empty_database_serves_every_layer(make_database, tmp_path: Path):
    store = Store(Settings(database_url=make_database("amberwatch_publish_empty"))).start()
    try:
        with serve(store, publish_settings(store, tmp_path / "data")) as server:
            assert set(MONITORING_LAYERS) <= set(server.state.layers)
            assert all(server.state.counts[layer] == 0 for layer in MONITORING_LAYERS)
            status, _, body = get(f"{server.url}/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")
            assert status == 200 and b"</WMS_Capabilities>" in body and b"ExceptionReport" not in body
            events = _layer_caps(body.decode(), "events")
            box_ = {k: float(v) for k, v in re.findall(r"<(\w+Bound\w+)>([-\d.]+)</", events)}
            assert (box_["westBoundLongitude"], box_["southBoundLatitude"], box_["eastBoundLongitude"],
                    box_["northBoundLatitude"]) == REGION_EXTENT
            status, _, body = get(f"{server.url}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities")
            assert status == 200 and b"</wfs:WFS_Capabilities>" in body and b"ExceptionReport" not in body
            layers = ["mining_sites", *MONITORING_LAYERS]
            for layer in layers:
                status, _, body = get(f"{server.url}/ogcapi/collections/{layer}/items?f=json")
                assert status == 200, (layer, body[:300])
                assert json.loads(body)["features"] == []
            assert ogrinfo_counts(f"WFS:{server.url}/ows?", layers) == dict.fromkeys(layers, 0)
            assert ogrinfo_counts(f"OAPIF:{server.url}/ogcapi", layers) == dict.fromkeys(layers, 0)
            img = _getmap(server, ["mining_sites", "detections", *MONITORING_LAYERS])
            assert (img[..., 3] == 0).all()
    finally:
        store.stop()
