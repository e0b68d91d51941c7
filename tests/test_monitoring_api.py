"""The monitoring read API against the real app (``create_app``) and a real PostGIS: bad input is always a 4xx with
a clear message, never a 500, and no answer carries database error text or a server path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Run, Site

LEAKS = ("psycopg", "sqlalchemy", "traceback", "select ", "/tmp/", "/work/", "/srv/", "out of range")


@pytest.fixture(scope="module")
def app_client(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from amberwatch.web.app import create_app

    data_dir: Path = tmp_path_factory.mktemp("monitoring-api")
    settings = Settings(data_dir=data_dir, database_url=make_database("amberwatch_monitoring_api"),
                        rate_limit_expensive_reads="10000/minute")  # the limits are not what is tested here
    store = Store(settings).start()
    geom = from_shape(MultiPolygon([box(26.30, 51.45, 26.31, 51.46)]), srid=4326)
    with store.session() as s:  # one live site, so the filters run against a real row
        t = datetime(2021, 5, 10, tzinfo=UTC)
        run = Run(state="published", parameters={}, progress=1.0, n_detections=1)
        s.add(run)
        s.flush()
        s.add(Site(first_run_id=run.id, last_run_id=run.id, status="new", first_seen=t, last_seen=t,
                   last_observed=t, status_since=t, area_ha=1.0, max_area_ha=1.0, pit_area_ha=1.0,
                   pond_area_ha=0.0, n_observations=1, oblast="Рівненська", geom=geom, max_geom=geom))
    try:
        with TestClient(create_app(settings, store), raise_server_exceptions=False) as client:
            yield client
    finally:
        store.stop()


def assert_clean_4xx(res, status: int, message: str | None = None) -> None:
    assert res.status_code == status, (res.status_code, res.text)
    detail = res.json()["detail"]
    assert isinstance(detail, str) and detail, res.text
    if message is not None:
        assert message in detail, detail
    lowered = res.text.lower()
    assert not any(leak in lowered for leak in LEAKS), res.text


NUL = "\x00"


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/sites", {"oblast": NUL}, "oblast="),
    ("/api/sites", {"oblast": f"Rivne{NUL}"}, "control characters (such as NUL) are not allowed"),
    ("/api/sites", {"raion": f"a{NUL}b"}, "raion="),
    ("/api/sites", {"status": NUL}, "unknown status"),
    ("/api/sites", {"status": f"new,{NUL}"}, "unknown status"),
    ("/api/sites", {"bbox": f"26,51,27,52{NUL}"}, "bbox="),
    ("/api/sites", {"limit": f"10{NUL}"}, "expected whole numbers"),
    ("/api/events", {"status": f"new{NUL}"}, "unknown status"),
    ("/api/events", {"to_status": NUL}, "to_status="),
    ("/api/events", {"since": f"2020-01-01{NUL}"}, "since="),
    ("/api/events", {"until": NUL}, "until="),
    ("/api/events", {"min_area_ha": NUL}, "expected a number"),
    ("/api/events.atom", {"to_status": NUL}, "to_status="),
    ("/api/events.atom", {"since": NUL}, "since="),
    ("/api/stats", {"by": NUL}, "unknown grouping"),
    ("/api/stats", {"format": NUL}, "unknown format"),
    ("/api/sites/%00", {}, "expected a whole number"),
    ("/api/sites/1%00", {}, "expected a whole number"),
])
def test_nul_bytes_are_400(app_client: TestClient, path: str, params: dict, message: str) -> None:
    """The app's guard refuses a NUL anywhere in the URL; behind it, the router's own checks refuse it too."""
    assert_clean_4xx(app_client.get(path, params=params), 400)
    assert_clean_4xx(bare_client(app_client).get(path, params=params), 400, message)


def bare_client(app_client: TestClient) -> TestClient:
    """The monitoring router alone (no guard), with the app's store, settings and errors table."""
    from fastapi import FastAPI

    from amberwatch.web import errors
    from amberwatch.web.monitoring import router

    app = FastAPI()
    app.state.store, app.state.settings = app_client.app.state.store, app_client.app.state.settings  # type: ignore
    errors.install(app)
    app.include_router(router, prefix="/api")
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/sites", {"offset": "99999999999999999999"}, "offset=99999999999999999999: must be <= 10000000"),
    ("/api/sites", {"offset": "9223372036854775808"}, "must be <= 10000000"),
    ("/api/sites", {"offset": "10000001"}, "must be <= 10000000"),
    ("/api/sites", {"offset": "-1"}, "offset=-1: must be >= 0"),
    ("/api/sites", {"offset": "1e3"}, "expected whole numbers"),
    ("/api/sites", {"offset": "9" * 5000}, "expected whole numbers"),
    ("/api/sites", {"limit": "99999999999999999999"}, "must be between 1 and 1000"),
    ("/api/sites", {"limit": "1001"}, "limit=1001: must be between 1 and 1000"),
    ("/api/events", {"offset": "99999999999999999999"}, "must be <= 10000000"),
    ("/api/events", {"limit": "-5"}, "must be between 1 and 1000"),
    ("/api/events.atom", {"offset": "9223372036854775807"}, "must be <= 10000000"),
])
def test_huge_or_bad_pages_are_400(app_client: TestClient, path: str, params: dict, message: str) -> None:
    assert_clean_4xx(app_client.get(path, params=params), 400, message)


@pytest.mark.parametrize("site_id", ["2147483648", "99999999999", "99999999999999999999999999", "0", "-1"])
def test_site_ids_out_of_range_are_404(app_client: TestClient, site_id: str) -> None:
    assert_clean_4xx(app_client.get(f"/api/sites/{site_id}"), 404, "not found")


@pytest.mark.parametrize("site_id", ["abc", "1e3", "%20"])
def test_site_ids_that_are_not_numbers_are_400(app_client: TestClient, site_id: str) -> None:
    assert_clean_4xx(app_client.get(f"/api/sites/{site_id}"), 400, "expected a whole number")


def test_a_site_id_with_a_dot_is_a_download_in_an_unknown_format(app_client: TestClient) -> None:
    """``/api/sites/{id}.{format}`` downloads a site (the portal): ``1.5`` asks for format "5", a clear 400."""
    assert_clean_4xx(app_client.get("/api/sites/1.5"), 400, "use one of geojson, gpkg, kml")


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/sites", {"bbox": "a,b,c,d"}, "expected four numbers"),
    ("/api/sites", {"bbox": "1,2,3,4,5"}, "got 5"),
    ("/api/sites", {"bbox": "nan,51,27,52"}, "need -180 <= minlon < maxlon <= 180"),
    ("/api/sites", {"bbox": "-inf,51,27,52"}, "need -180 <= minlon"),
    ("/api/sites", {"bbox": "-181,51,27,52"}, "need -180 <= minlon"),
    ("/api/sites", {"bbox": "26,51,27,91"}, "maxlat <= 90"),
    ("/api/sites", {"bbox": "26,51,26,52"}, "minlon < maxlon"),
    ("/api/events", {"bbox": ",,,"}, "expected four numbers"),
    ("/api/events.atom", {"bbox": "26;51;27;52"}, "expected four numbers"),
    ("/api/events", {"since": "2020-02-30"}, "since='2020-02-30': expected an ISO date"),
    ("/api/events", {"until": "2020-13-01"}, "until='2020-13-01'"),
    ("/api/events", {"since": "99999-01-01"}, "expected an ISO date"),
    ("/api/events", {"since": "2020-06-15T25:00:00Z"}, "expected an ISO date"),
    ("/api/events", {"since": "-1"}, "expected an ISO date"),
    ("/api/events", {"since": "2021-01-01", "until": "2020-01-01"}, "is before since="),
    ("/api/events", {"min_area_ha": "1e999"}, "must be a finite number"),
    ("/api/events", {"min_area_ha": "nan"}, "must be >= 0"),
])
def test_bad_bboxes_dates_and_numbers_are_400(app_client: TestClient, path: str, params: dict,
                                              message: str) -> None:
    assert_clean_4xx(app_client.get(path, params=params), 400, message)


def test_long_values_are_cut_in_messages(app_client: TestClient) -> None:
    res = app_client.get("/api/sites", params={"oblast": "x" * 5000})
    assert_clean_4xx(res, 400, "longer than 200 characters")
    assert len(res.json()["detail"]) < 300


def test_edges_that_are_fine(app_client: TestClient) -> None:
    """The bounds themselves are accepted, and the filters still find the site."""
    res = app_client.get("/api/sites", params={"offset": "10000000", "limit": "1000"})
    assert res.status_code == 200 and res.json()["numberReturned"] == 0 and res.json()["numberMatched"] == 1
    res = app_client.get("/api/sites", params={"oblast": "рівненська", "bbox": "26,51,27,52", "status": "new"})
    assert res.status_code == 200 and res.json()["numberMatched"] == 1
    site_id = res.json()["features"][0]["id"]
    one = app_client.get(f"/api/sites/{site_id}")
    assert one.status_code == 200 and one.json()["properties"]["observations"] == []
    assert app_client.get("/api/sites/2147483647").status_code == 404
    res = app_client.get("/api/events", params={"since": "0001-01-01", "until": "9999-12-31T23:59:59-05:00",
                                                "offset": "10000000", "min_area_ha": "0"})
    assert res.status_code == 200 and res.json()["numberMatched"] == 0
    feed = app_client.get("/api/events.atom", params={"since": "2020-06-15T10:00:00Z"})
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    stats = app_client.get("/api/stats", params={"by": "year", "format": "csv"})
    assert stats.status_code == 200 and stats.text.startswith("year,")


@pytest.mark.parametrize(("path", "params"), [
    ("/api/events", {"since": "0001-01-01T00:00:00+14:00"}),
    ("/api/events", {"until": "9999-12-31T23:59:59-14:00"}),
    ("/api/events", {"since": "0001-01-01", "until": "0001-01-01"}),
    ("/api/events.atom", {"since": "9999-12-31"}),
    ("/api/sites", {"bbox": "-180,-90,180,90"}),
    ("/api/sites", {"bbox": "1e2,-9e1,1.8e2,9e1"}),
    ("/api/events", {"min_area_ha": "1e308"}),
    ("/api/sites", {"limit": "+5", "offset": " 5"}),
    ("/api/sites", {"oblast": "'; drop table sites; --", "raion": "%_\\"}),
    ("/api/sites", {"oblast": "Рівне 🏞️", "status": " new , active "}),
    ("/api/sites?oblast=%ED%A0%80&raion=%FF%FE", {}),  # not UTF-8
    ("/api/events", {"status": "new", "to_status": "active"}),
    ("/api/stats", {"by": "raion", "format": "json"}),
    ("/api/sites/00000000000000000001", {}),
])
def test_odd_but_valid_values_are_never_5xx(app_client: TestClient, path: str, params: dict) -> None:
    res = app_client.get(path, params=params)
    assert res.status_code in (200, 400, 404), res.text
    assert not any(leak in res.text.lower() for leak in LEAKS), res.text
