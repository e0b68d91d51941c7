"""Monitoring through time on a real PostGIS: sites, statuses, events, admin position, statistics, feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO, SHARED_DATA, run_cli, shared
from geoalchemy2.shape import from_shape
from publish_helpers import publish_polygons
from rasterio.transform import from_origin
from shapely.geometry import Point, box
from sqlalchemy import select, text
from track_helpers import FOOTPRINT, ORIGIN, publish, rect, square

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, Event, Run, Site, SiteObservation
from amberwatch.track import update_sites
from amberwatch.track.geo import to_metric, to_wgs84

T2018, T2019, T2020 = (datetime(y, 6, 15, 9, 30, tzinfo=UTC) for y in (2018, 2019, 2020))


@pytest.fixture(scope="module")
def db(make_database) -> Store:
    url = make_database("amberwatch_track")
    st = Store(Settings(database_url=url)).start()
    yield st
    st.stop()


@pytest.fixture
def clean(db: Store) -> Store:
    yield db
    with db.session() as s:
        s.execute(text("truncate events, site_observations, detections, sites, run_scenes, runs, scenes cascade"))


def cloud_mask_over(path: Path, geom) -> Path:
    """A real uint8 cloud mask GeoTIFF (EPSG:4326, 0.0002 deg pixels) that is cloudy (1) over ``geom`` only."""
    minx, miny, maxx, maxy = FOOTPRINT.bounds
    res = 0.0002
    width, height = int((maxx - minx) / res), int((maxy - miny) / res)
    transform = from_origin(minx, maxy, res, res)
    from rasterio.features import rasterize

    data = rasterize([(geom.buffer(0.001), 1)], out_shape=(height, width), transform=transform, dtype="uint8")
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=transform) as ds:
        ds.write(data, 1)
    return path


# Five sites 1.5 km apart. Areas in ha: side 100 m = 1 ha.
A, B, C, D, F = (i * 1500.0 for i in range(5))
SERIES = {
    # A: appears (pit 1 ha), grows (pits 2 ha), pits gone but ponds left in the pit area (1.5 ha) -> abandoned
    T2018: [("pit", square(A, 0, 100))],
    T2019: [("pit", square(A, 0, 100)), ("pit", square(A + 100, 0, 100))],
    T2020: [("pond", rect(A, 0, 150, 100))],
}
# B: pit 1 ha + pond 0.5 ha; then pit shrunk to 0.2 ha and a 0.25 ha pond in the old pit: no fresh sand, no growth,
# 0.95 ha of the 1.5 ha still bare or flooded -> abandoned
SERIES[T2018] += [("pit", square(B, 0, 100)), ("pond", square(B + 150, 0, 70.71))]
SERIES[T2019] += [("pit", square(B, 0, 44.72)), ("pond", square(B + 50, 0, 50)), ("pond", square(B + 150, 0, 70.71))]
# B in 2020: nothing left -> recovering
SERIES[T2020] += [("pit", square(C, 0, 80))]  # C: new in 2020
SERIES[T2018] += [("pit", square(D, 0, 100))]  # D: seen, gone in 2019 (recovering), dug again in 2020 (active)
SERIES[T2020] += [("pit", square(D, 0, 100))]
SERIES[T2018] += [("pit", square(F, 0, 100))]  # F: under cloud in 2019 (not observed), grown in 2020
SERIES[T2020] += [("pit", square(F, 0, 150))]

EXPECTED_STATUS = {A: "abandoned", B: "recovering", C: "new", D: "active", F: "active"}
EXPECTED_EVENTS = {
    A: [(T2018, None, "new"), (T2019, "new", "active"), (T2020, "active", "abandoned")],
    B: [(T2018, None, "new"), (T2019, "new", "abandoned"), (T2020, "abandoned", "recovering")],
    C: [(T2020, None, "new")],
    D: [(T2018, None, "new"), (T2019, "new", "recovering"), (T2020, "recovering", "active")],
    F: [(T2018, None, "new"), (T2020, "new", "active")],
}


def site_at(db: Store, dx: float) -> Site:
    point = to_wgs84(to_metric(square(dx, 0, 10)).centroid)
    with db.session() as s:
        site = s.scalar(select(Site).where(Site.merged_into_id.is_(None),
                                           Site.max_geom.ST_DWithin(from_shape(point, srid=4326), 0.002)))
        assert site is not None, f"no site at dx={dx}"
        return site


def snapshot(db: Store) -> dict:
    """Everything about the sites, keyed by position (site ids depend on publishing order)."""
    out = {}
    for dx in (A, B, C, D, F):
        site = site_at(db, dx)
        with db.session() as s:
            events = s.execute(select(Event.observed_at, Event.from_status, Event.to_status)
                               .where(Event.site_id == site.id).order_by(Event.observed_at)).all()
            obs = s.execute(select(SiteObservation.observed_at, SiteObservation.status,
                                   SiteObservation.area_ha).where(SiteObservation.site_id == site.id)
                            .order_by(SiteObservation.observed_at)).all()
        out[dx] = {
            "status": site.status, "first_seen": site.first_seen, "last_seen": site.last_seen,
            "area": round(site.area_ha, 3), "max_area": round(site.max_area_ha, 3),
            "events": [tuple(e) for e in events], "obs": [(o[0], o[1], round(o[2], 3)) for o in obs],
        }
    return out


def publish_series(db: Store, order: list[datetime], tmp_path: Path) -> list:
    mask = cloud_mask_over(tmp_path / "clouds_2019.tif", square(F, 0, 100))
    events = []
    for when in order:
        events += publish(db, when, SERIES[when], cloud_mask=mask if when == T2019 else None)[1]
    return events


def test_three_date_series_statuses_and_events(clean: Store, tmp_path: Path) -> None:
    db = clean
    new_events = publish_series(db, [T2018, T2019, T2020], tmp_path)
    snap = snapshot(db)
    for dx, status in EXPECTED_STATUS.items():
        assert snap[dx]["status"] == status, (dx, snap[dx])
        assert snap[dx]["events"] == EXPECTED_EVENTS[dx], (dx, snap[dx]["events"])
    # update_sites returned each event once, when it was created
    assert len(new_events) == sum(len(v) for v in EXPECTED_EVENTS.values())
    # dates and areas
    assert snap[A]["first_seen"] == T2018 and snap[A]["last_seen"] == T2020
    assert snap[A]["area"] == pytest.approx(1.5, abs=0.01)  # the pond
    assert snap[A]["max_area"] == pytest.approx(2.0, abs=0.01)  # union of pits and pond
    assert snap[B]["last_seen"] == T2019 and snap[B]["area"] == 0.0
    assert snap[C]["first_seen"] == T2020
    # F was under cloud in 2019: no observation that year
    assert [o[0] for o in snap[F]["obs"]] == [T2018, T2020]
    assert [o[0] for o in snap[D]["obs"]] == [T2018, T2019, T2020]
    site_a = site_at(db, A)
    assert site_a.growth_rate_ha_yr is not None and site_a.growth_rate_ha_yr > 0
    assert site_a.disturbance in ("low", "moderate", "high", "severe")
    with db.session() as s:
        unassigned = s.scalar(select(Detection.id).where(Detection.site_id.is_(None)).limit(1))
    assert unassigned is None


def test_out_of_order_publishing_gives_the_same_result(clean: Store, tmp_path: Path) -> None:
    db = clean
    publish_series(db, [T2018, T2019, T2020], tmp_path)
    expected = snapshot(db)
    with db.session() as s:
        s.execute(text("truncate events, site_observations, detections, sites, run_scenes, runs, scenes cascade"))
    publish_series(db, [T2020, T2018, T2019], tmp_path)
    assert snapshot(db) == expected


def test_clusters_merge_into_the_oldest_site(clean: Store) -> None:
    db = clean
    publish(db, T2018, [("pit", square(0, 0, 50)), ("pit", square(150, 0, 50))])  # 100 m apart: two sites
    with db.session() as s:
        ids = sorted(s.scalars(select(Site.id)))
    assert len(ids) == 2
    publish(db, T2019, [("pit", square(0, 0, 50)), ("pit", square(150, 0, 50)), ("pit", square(75, 0, 50))])
    with db.session() as s:
        live = s.scalars(select(Site).where(Site.merged_into_id.is_(None))).all()
        merged = s.scalars(select(Site).where(Site.merged_into_id.is_not(None))).all()
    assert [site.id for site in live] == [ids[0]]
    assert [(m.id, m.merged_into_id) for m in merged] == [(ids[1], ids[0])]
    assert live[0].status == "active"  # the footprint grew


def test_update_sites_unknown_run(clean: Store) -> None:
    from amberwatch.errors import NotFoundError

    with clean.session() as s, pytest.raises(NotFoundError, match="run 999999 not found"):
        update_sites(s, 999999)


def test_cloud_mask_helper_is_really_cloudy_over_f(tmp_path: Path) -> None:
    path = cloud_mask_over(tmp_path / "m.tif", square(F, 0, 100))
    with rasterio.open(path) as ds:
        assert 0 < ds.read(1).mean() < 0.05 and np.unique(ds.read(1)).tolist() == [0, 1]


# -- admin position and protected areas with the real layers --------------------------------------
PEREBRODY = (27.1525, 51.6967)  # inside the Perebrody Peatlands Ramsar site (Rivne nature reserve)


@pytest.fixture
def layers(db: Store) -> dict[str, Path]:
    paths = {
        "oblast": shared("boundaries", "geoboundaries-ukr", "geoBoundaries-UKR-ADM1.geojson"),
        "raion": shared("boundaries", "geoboundaries-ukr", "geoBoundaries-UKR-ADM2_simplified.geojson"),
        "hromada": shared("boundaries", "kse-hromadas-border", "hromadas_30km_from_border.shp"),
        "ramsar": shared("protected_areas", "ramsar-ua-nw"),
        "bto": shared("protected_areas", "bto-polesia-sites", "Study_sites_merged.shp"),
    }
    yield paths
    with db.session() as s:
        s.execute(text("truncate admin_units, protected_areas"))


def test_admin_position_and_protected_areas_with_real_layers(clean: Store, layers: dict[str, Path]) -> None:
    import re

    import shapely

    from amberwatch.track.geo import to_metric as metric
    from amberwatch.usecases.monitoring import load_layer

    db = clean
    publish(db, T2018, [("pit", square(0, 0, 100))])  # before the layers: filled in when they are loaded
    with db.session() as s:
        assert load_layer(s, "oblast", [layers["oblast"]]) == 27
        assert load_layer(s, "raion", [layers["raion"]]) == 495
        assert load_layer(s, "hromada", [layers["hromada"]]) == 327
        assert load_layer(s, "protected_area", [layers["ramsar"]]) == 9
        assert load_layer(s, "protected_area", [layers["bto"]], source="bto-polesia-sites") == 14
    with db.session() as s:  # reloading a source replaces it, in one transaction
        assert load_layer(s, "protected_area", [layers["ramsar"]]) == 9
        assert s.scalar(text("select count(*) from protected_areas")) == 23
        assert s.scalar(text("select count(distinct source) from protected_areas")) == 2
    inside = box(*PEREBRODY, PEREBRODY[0] + 0.0015, PEREBRODY[1] + 0.001)
    publish(db, T2019, [("pit", square(0, 0, 100)), ("pit", square(0, 0, 100, origin=PEREBRODY)),
                        ("pond", inside)], footprint=box(26.3, 51.5, 27.4, 51.9))
    site = site_at(db, 0)
    assert site.oblast == "Rivne Oblast"
    assert site.raion == "Dubrovytsia"
    assert site.hromada == "Висоцька"  # Latin look-alikes in the KSE names replaced by Cyrillic letters
    assert not re.search("[A-Za-z]", site.hromada)
    assert site.protected_areas is None and not site.in_protected_area
    # distance to the nearest protected area: geodesic in PostGIS vs planar LAEA from the files themselves
    with db.session() as s:
        wkb = s.scalar(select(Site.max_geom.ST_AsBinary()).where(Site.id == site.id))
    extent = metric(shapely.from_wkb(bytes(wkb)))
    pa_files = [*sorted(layers["ramsar"].glob("*.shp")), layers["bto"]]
    nearest = min(extent.distance(g) for p in pa_files for g in polygons_in_laea(p))
    assert site.protected_distance_m == pytest.approx(nearest, rel=0.01)
    in_perebrody = from_shape(Point(PEREBRODY[0] + 5e-4, PEREBRODY[1] + 5e-4), srid=4326)
    with db.session() as s:
        per = s.scalar(select(Site).where(Site.merged_into_id.is_(None), Site.max_geom.ST_Intersects(in_perebrody)))
    assert per is not None and per.in_protected_area and per.protected_distance_m == 0
    assert "Perebrody Peatlands" in per.protected_areas and "Perebrody" in per.protected_areas.split("; ")
    assert per.oblast == "Rivne Oblast"



def polygons_in_laea(path: Path) -> list:
    """The polygons of a vector file in EPSG:3035, read and reprojected independently of amberwatch.track."""
    import pyogrio.raw
    import shapely
    from pyproj import Transformer

    meta, _, wkb, _ = pyogrio.raw.read(path)
    tr = Transformer.from_crs(meta["crs"], 3035, always_xy=True)
    geoms = shapely.force_2d(shapely.from_wkb(wkb))
    return list(shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))))


# -- layer loading errors --------------------------------------------------------------------------
@pytest.fixture
def cli_env(db: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMBERWATCH_DATABASE_URL", db.url)
    monkeypatch.setenv("AMBERWATCH_DATA_DIR", str(tmp_path))


def test_layers_load_errors_are_clear(cli_env, tmp_path: Path) -> None:
    res = run_cli("layers", "load", "county", str(tmp_path))
    assert res.exit_code == 2 and "unknown layer kind 'county': use one of oblast, raion, hromada, protected_area" \
        in res.output
    res = run_cli("layers", "load", "oblast", str(tmp_path / "missing.gpkg"))
    assert res.exit_code == 2 and f"{tmp_path / 'missing.gpkg'}: no such file or directory" in res.output
    csv_file = tmp_path / "names.csv"
    csv_file.write_text("name,code\nRivne,UA-56\n")
    res = run_cli("layers", "load", "oblast", str(csv_file))
    assert res.exit_code == 2 and "the file has no geometry; oblast needs polygons" in res.output
    bad = tmp_path / "nonsense.geojson"
    bad.write_text("this is not json")
    res = run_cli("layers", "load", "oblast", str(bad))
    assert res.exit_code == 2 and "not a readable vector file" in res.output


def test_layers_load_name_field_and_points(cli_env, tmp_path: Path) -> None:
    import json

    gj = tmp_path / "units.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"label": "Тeст", "other": 1},
        "geometry": {"type": "Polygon", "coordinates": [[[26, 51], [27, 51], [27, 52], [26, 51]]]}}]}))
    res = run_cli("layers", "load", "oblast", str(gj))
    assert res.exit_code == 2 and "cannot tell which field holds the oblast name (fields: label, other)" in res.output
    res = run_cli("layers", "load", "oblast", str(gj), "--name-field", "nom")
    assert res.exit_code == 2 and "no field 'nom' for the name; fields are: label, other" in res.output
    res = run_cli("layers", "load", "oblast", str(gj), "--name-field", "label")
    assert res.exit_code == 0, res.output
    with Store(Settings()).start(migrate=False).session() as s:
        assert s.scalars(text("select name from admin_units where kind = 'oblast'")).all() == ["Тест"]
        s.execute(text("truncate admin_units"))
    pts = tmp_path / "points.geojson"
    pts.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "x"}, "geometry": {"type": "Point", "coordinates": [26, 51]}}]}))
    res = run_cli("layers", "load", "protected_area", str(pts))
    assert res.exit_code == 2 and "feature 0 is a Point; protected_area layers need polygons" in res.output


# -- statistics ------------------------------------------------------------------------------------
def _assert_adds_up(stats: dict) -> None:
    by = stats["by"]
    assert stats["groups"], stats
    for key, total in stats["total"].items():
        if key == by:
            continue
        assert sum(g[key] for g in stats["groups"]) == pytest.approx(total, abs=1e-3), (key, stats)


def test_stats_totals_add_up(clean: Store, tmp_path: Path) -> None:
    from amberwatch.track.stats import stats_csv
    from amberwatch.usecases.monitoring import compute_stats, load_layer

    db = clean
    publish_series(db, [T2018, T2019, T2020], tmp_path)
    # a sixth site in Zhytomyr oblast, and a west Rivne one: three groups by oblast incl. sites outside the layer
    publish(db, T2019, [("pit", square(0, 0, 120, origin=(28.2, 51.3)))], footprint=box(28.0, 51.1, 28.4, 51.5))
    oblasts = SHARED_DATA / "boundaries" / "geoboundaries-ukr" / "geoBoundaries-UKR-ADM1.geojson"
    if oblasts.exists():  # without the layer every site is in the "(unknown)" group: the sums must still hold
        with db.session() as s:
            load_layer(s, "oblast", [oblasts])
    try:
        with db.session() as s:
            by_oblast, by_raion, by_year = (compute_stats(s, by) for by in ("oblast", "raion", "year"))
    finally:
        with db.session() as s:
            s.execute(text("truncate admin_units"))
    for stats in (by_oblast, by_raion, by_year):
        _assert_adds_up(stats)
    assert by_oblast["total"]["sites"] == 6
    if oblasts.exists():
        assert {g["oblast"]: g["sites"] for g in by_oblast["groups"]} == {"Rivne Oblast": 5, "Zhytomyr Oblast": 1}
    assert by_raion["groups"] == [{**by_raion["total"], "raion": "(unknown)"}]
    years = {g["year"]: g for g in by_year["groups"]}
    assert {y: g["new_sites"] for y, g in years.items()} == {2018: 4, 2019: 1, 2020: 1}
    assert {y: g["abandoned_sites"] for y, g in years.items()} == {2018: 0, 2019: 1, 2020: 1}
    assert {y: g["recovering_sites"] for y, g in years.items()} == {2018: 0, 2019: 1, 2020: 1}
    assert years[2020]["reactivated_sites"] == 1
    # disturbed area per year (growth of the cumulative footprints) adds up to the sites' maximum extents
    assert by_year["total"]["disturbed_area_ha"] == pytest.approx(by_oblast["total"]["disturbed_area_ha"], abs=1e-3)
    rows = stats_csv(by_year).splitlines()
    assert rows[0].startswith("year,") and rows[-1].startswith("total,") and len(rows) == 5


# -- REST API and Atom feed --------------------------------------------------------------------------
@pytest.fixture
def client(clean: Store):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    from amberwatch.errors import AmberWatchError
    from amberwatch.web.monitoring import router

    app = FastAPI()
    app.state.store, app.state.settings = clean, Settings(database_url=clean.url)

    @app.exception_handler(AmberWatchError)  # as in amberwatch.web.app
    async def handler(_: Request, err: AmberWatchError) -> JSONResponse:
        return JSONResponse(status_code=err.status_code, content={"detail": str(err)})

    app.include_router(router, prefix="/api")
    with TestClient(app) as c:
        yield c


def test_api_sites_events_feed_and_stats(client, clean: Store, tmp_path: Path) -> None:
    from lxml import etree

    publish_series(clean, [T2018, T2019, T2020], tmp_path)
    sites = client.get("/api/sites").json()
    assert sites["numberMatched"] == 5 and {f["properties"]["status"] for f in sites["features"]} == \
        {"new", "active", "abandoned", "recovering"}
    active = client.get("/api/sites", params={"status": "active"}).json()
    assert active["numberMatched"] == 2
    b = site_at(clean, B)
    west = to_wgs84(to_metric(square(B, 0, 10)).centroid).x
    near_a = client.get("/api/sites", params={"bbox": f"{ORIGIN[0] - 0.01},{ORIGIN[1] - 0.01},{west - 0.005},"
                                                      f"{ORIGIN[1] + 0.01}"}).json()
    assert near_a["numberMatched"] == 1  # only A lies west of B
    one = client.get(f"/api/sites/{b.id}").json()
    assert [o["status"] for o in one["properties"]["observations"]] == ["new", "abandoned", "recovering"]
    assert [e["to_status"] for e in one["properties"]["events"]] == ["new", "abandoned", "recovering"]
    assert one["geometry"]["type"] == "MultiPolygon"
    assert client.get("/api/sites/999999").status_code == 404

    events = client.get("/api/events").json()
    assert events["numberMatched"] == sum(len(v) for v in EXPECTED_EVENTS.values())
    dates = [f["properties"]["observed_at"] for f in events["features"]]
    assert dates == sorted(dates)
    abandoned = client.get("/api/events", params={"to_status": "abandoned"}).json()
    assert abandoned["numberMatched"] == 2
    in_2020 = client.get("/api/events", params={"since": "2020-01-01", "until": "2020-12-31"}).json()
    assert in_2020["numberMatched"] == sum(1 for v in EXPECTED_EVENTS.values() for e in v if e[0] == T2020)
    big = client.get("/api/events", params={"min_area_ha": "2"}).json()
    assert big["numberMatched"] >= 1 and all(f["properties"]["area_ha"] >= 2 for f in big["features"])
    page = client.get("/api/events", params={"limit": "3", "offset": "3"}).json()
    assert [f["id"] for f in page["features"]] == [f["id"] for f in events["features"][3:6]]

    feed = client.get("/api/events.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    root = etree.fromstring(feed.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = root.findall("a:entry", ns)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed" and len(entries) == events["numberMatched"]
    assert len({e.findtext("a:id", namespaces=ns) for e in entries}) == len(entries)
    for entry in entries:
        href = entry.find("a:link[@rel='alternate']", ns).get("href")
        assert client.get(href.replace("http://testserver", "")).status_code == 200
        assert entry.findtext("a:updated", namespaces=ns).endswith("Z") and entry.findtext("a:title", namespaces=ns)
    assert len(etree.fromstring(client.get("/api/events.atom", params={"to_status": "new"}).content)
               .findall("a:entry", ns)) == 5

    stats = client.get("/api/stats", params={"by": "year"}).json()
    _assert_adds_up(stats)
    csv_text = client.get("/api/stats", params={"by": "oblast", "format": "csv"})
    assert csv_text.headers["content-type"].startswith("text/csv") and csv_text.text.startswith("oblast,sites,")


@pytest.mark.parametrize(("url", "message"), [
    ("/api/sites?status=closed", "status='closed': unknown status closed; use one or more of new, active"),
    ("/api/sites?bbox=1,2,3", "bbox='1,2,3': expected four numbers minlon,minlat,maxlon,maxlat, got 3"),
    ("/api/sites?bbox=27,52,26,51", "need -180 <= minlon < maxlon <= 180"),
    ("/api/events?since=yesterday", "since='yesterday': expected an ISO date (2020-06-15) or datetime"),
    ("/api/events?since=2020-01-01&until=2019-01-01", "until='2019-01-01' is before since='2020-01-01'"),
    ("/api/events?min_area_ha=-1", "min_area_ha='-1': must be >= 0"),
    ("/api/events?min_area_ha=big", "min_area_ha='big': expected a number"),
    ("/api/events?limit=0", "limit=0: must be between 1 and 1000"),
    ("/api/events.atom?to_status=gone", "to_status='gone': unknown status gone"),
    ("/api/stats?by=district", "unknown grouping 'district': use one of oblast, raion, hromada, year"),
    ("/api/stats?format=xlsx", "unknown format 'xlsx': use one of json, csv"),
])
def test_api_bad_filters_are_400(client, url: str, message: str) -> None:
    res = client.get(url)
    assert res.status_code == 400 and message in res.json()["detail"], res.text


def test_stats_and_track_cli(cli_env, clean: Store, tmp_path: Path) -> None:
    import csv
    import io
    import json

    publish_series(clean, [T2018, T2019, T2020], tmp_path)
    res = run_cli("stats", "--by", "year", "--format", "csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows[-1]["year"] == "total" and int(rows[-1]["new_sites"]) == 5
    assert sum(int(r["new_sites"]) for r in rows[:-1]) == 5
    res = run_cli("stats")
    assert res.exit_code == 0 and json.loads(res.stdout)["total"]["sites"] == 5
    res = run_cli("stats", "--by", "county")
    assert res.exit_code == 2 and "unknown grouping 'county'" in res.output
    res = run_cli("track", str(tmp_path / "nope"))
    assert res.exit_code == 2 and "nope: no such file or directory" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("track", str(empty))
    assert res.exit_code == 2 and "no scene in this directory" in res.output
    res = run_cli("track", str(empty), "--out", str(tmp_path / "sites.shp"))
    assert res.exit_code == 2 and "use a .gpkg or .geojson file name" in res.output


def test_write_sites_gpkg(clean: Store, tmp_path: Path) -> None:
    import pyogrio

    from amberwatch.usecases.monitoring import write_sites

    publish_series(clean, [T2018, T2019, T2020], tmp_path)
    out = tmp_path / "sites.gpkg"
    with clean.session() as s:
        assert write_sites(s, out) == 5
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:4326" and info["features"] == 5
    for field in ("site_id", "status", "first_seen", "last_seen", "area_ha", "oblast", "raion"):
        assert field in info["fields"]
    import pyogrio.raw

    _, _, _, values = pyogrio.raw.read(out)
    statuses = values[list(info["fields"]).index("status")]
    assert sorted(statuses) == sorted(EXPECTED_STATUS.values())


def test_pipeline_publish_result_updates_sites(clean: Store, tmp_path: Path) -> None:
    """The real caller: usecases.runs.publish_result inserts the polygons, calls update_sites and publishes."""
    settings = Settings(database_url=clean.url, data_dir=tmp_path)
    run_ids = [publish_polygons(clean, settings, f"PIPE_{when:%Y}", when, FOOTPRINT, polys)
               for when, polys in ((T2019, [square(0, 0, 100)]), (T2018, [square(0, 0, 60)]))]  # older one last
    site = site_at(clean, 0)
    assert (site.first_seen, site.last_seen, site.status) == (T2018, T2019, "active")
    assert site.last_run_id == run_ids[0] and site.first_run_id == run_ids[1]
    with clean.session() as s:
        assert s.scalar(text("select count(*) from mining_sites")) == 1
        assert s.execute(text("select from_status, to_status from site_events order by observed_at")).all() == \
            [(None, "new"), ("new", "active")]
        assert {r.state for r in s.scalars(select(Run))} == {"published"}


def test_track_rejects_bad_paths(tmp_path: Path) -> None:
    """What POST /api/track checks before queueing anything (usecases.tracking.plan_track)."""
    from amberwatch.errors import ForbiddenPathError, InputError
    from amberwatch.usecases.tracking import plan_track

    settings = Settings(data_dir=tmp_path, allowed_roots=[tmp_path])
    with pytest.raises(InputError, match="paths: give at least one scene path"):
        plan_track(settings, [])
    with pytest.raises(ForbiddenPathError, match="allowed root"):
        plan_track(settings, ["/etc"])


def test_track_command_on_demo_scenes(cli_env, clean: Store, tmp_path: Path) -> None:
    """``amberwatch track`` end to end (real ingest and detection) on the demo scene(s), when they are built."""
    import pyogrio

    demo = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
    if not demo:
        pytest.skip("demo scene not built yet (demo/S2_*amber_demo*.tif)")
    out = tmp_path / "sites.gpkg"
    res = run_cli("track", str(REPO / "demo"), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "sites:" in res.output
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:4326"
    with clean.session() as s:
        n_sites = s.scalar(text("select count(*) from mining_sites"))
    assert info["features"] == n_sites
