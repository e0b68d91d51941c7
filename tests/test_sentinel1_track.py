"""Sentinel-1 in tracking: radar change stored in PostGIS counts as evidence on dates Sentinel-2 was cloudy; the
pair comparison and the use case on the real OPERA pixels of ../shared/data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import REPO, run_cli, shared
from shapely.geometry import MultiPolygon
from sqlalchemy import select, text
from track_helpers import FOOTPRINT, publish, square  # the same scene, run and detections as the optical tracking

from amberwatch.errors import InputError
from amberwatch.ingest import ingest_s1
from amberwatch.sar.change import CHANGE_CLASSES
from amberwatch.sar.pair import compare_scenes
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Event, SiteObservation
from amberwatch.store.queries import sar as sar_q
from amberwatch.track import rebuild_sites
from amberwatch.track.geo import to_metric
from amberwatch.usecases.sentinel1 import record_s1_pair, water_model

T1, T2 = datetime(2018, 6, 15, 9, 30, tzinfo=UTC), datetime(2018, 9, 15, 9, 30, tzinfo=UTC)
S1_QUIET, S1_POND, S1_SAME = (datetime(2018, m, d, 4, 50, tzinfo=UTC) for m, d in ((7, 1), (9, 16), (6, 15)))
OPERA = ("sentinel1", "opera-rtc-s1-dist-s1", "10SGD", "137")


@pytest.fixture(scope="module")
def db(make_database) -> Store:
    st = Store(Settings(database_url=make_database("amberwatch_s1track"))).start()
    yield st
    st.stop()


def radar(db: Store, when: datetime, changes: list) -> None:
    with db.session() as s:
        sar_q.save_observation(s, scene_key=f"S1A_TEST_{when:%Y%m%dT%H%M%S}", before_scene_key="S1A_TEST_BEFORE",
                               sensor="sentinel1a", acquired=when, footprint=MultiPolygon([FOOTPRINT]),
                               polarisation="VH", threshold_db=3.0,
                               changes=[(cls, MultiPolygon([g])) for cls, g in changes])
        rebuild_sites(s)


def test_radar_evidence_on_a_cloudy_date(db: Store) -> None:
    publish(db, T1, [("pit", square(0, 0, 100))])
    cloudy_over_site = FOOTPRINT.difference(square(-300, -300, 700))  # S2 on T2 saw everything but the site
    publish(db, T2, [], clear_sky=cloudy_over_site)
    radar(db, S1_QUIET, [("decrease", square(3000, 3000, 100))])  # change far away: a quiet radar date here
    radar(db, S1_SAME, [("water_appeared", square(0, 0, 50))])  # same date as the optical T1: optical wins
    radar(db, S1_POND, [("water_appeared", square(0, 0, 70.71))])  # a 0.5 ha pond appears in the old pit
    with db.session() as s:
        rows = s.execute(select(SiteObservation.observed_at, SiteObservation.sensor, SiteObservation.status,
                                SiteObservation.sar_change_ha, SiteObservation.area_ha)
                         .order_by(SiteObservation.observed_at)).all()
        events = s.execute(select(Event.observed_at, Event.to_status).order_by(Event.observed_at)).all()
    assert [(r.observed_at, r.sensor, r.status) for r in rows] == [
        (T1, "optical", "new"), (S1_QUIET, "sentinel1", "new"), (S1_POND, "sentinel1", "active")]
    assert rows[1].sar_change_ha == pytest.approx(0.0)
    assert rows[2].sar_change_ha == pytest.approx(0.5, rel=0.02) and rows[2].area_ha == pytest.approx(1.0, rel=0.02)
    assert [(e.observed_at, e.to_status) for e in events] == [(T1, "new"), (S1_POND, "active")]
    with db.session() as s:  # T2 did not observe the site (cloud): it is not in its history
        assert s.scalar(text("select count(*) from site_observations where observed_at = :t"), {"t": T2}) == 0


def test_compare_real_opera_dates() -> None:
    a = ingest_s1(next(shared(*OPERA, "2021-12-19").glob("*T137-292321-IW2_*_VV.tif")))
    b = ingest_s1(next(shared(*OPERA, "2022-12-20").glob("*T137-292321-IW2_*_VV.tif")))
    model = water_model(Settings(models_dir=REPO / "models" / "registry"))
    result = compare_scenes(a, b, model)
    names = [n for n, _ in result.polygons]
    assert "decrease" in names and all(result.footprint.buffer(1e-6).contains(g) for _, g in result.polygons)
    pixel_ha = 30 * 30 / 1e4
    for name, geom in result.polygons:
        pixels = int((result.change.classes == CHANGE_CLASSES.index(name)).sum())
        measured = float(to_metric(geom).area / 1e4)
        assert measured == pytest.approx(pixels * pixel_ha, rel=0.05)  # EPSG:3035 vs UTM 11N: small scale change
    with pytest.raises(InputError, match="not later"):
        compare_scenes(b, a, model)
    sea = ingest_s1(next(shared(*OPERA, "2022-12-20").glob("*T137-292321-IW1_*_VV.tif")))
    with pytest.raises(InputError, match="not on one grid"):
        compare_scenes(a, sea, model)


def test_record_pair_use_case(db: Store) -> None:
    settings = Settings(database_url=db.settings.database_url, models_dir=REPO / "models" / "registry")
    before = [next(shared(*OPERA, "2021-12-19").glob("*T137-292321-IW2_*_VV.tif"))]
    after = [next(shared(*OPERA, "2022-12-20").glob("*T137-292321-IW2_*_VV.tif"))]
    record = record_s1_pair(db, settings, before, after)
    assert record.acquired.date().isoformat() == "2022-12-20" and record.threshold_db >= 3.0
    assert record.events == 0  # California: no site under this radar pair
    with db.session() as s:
        n, area = s.execute(text("select count(*), sum(st_area(geom::geography)) / 1e4 from sar_changes "
                                 "where sar_observation_id = :i"), {"i": record.observation_id}).one()
    changed = record.changed_fraction["decrease"] + record.changed_fraction["increase"]
    assert n >= 1 and float(area) == pytest.approx(changed * 100 * 100 * 0.09, rel=0.05)


@pytest.fixture
def cli_env(db: Store, tmp_path):
    return {"AMBERWATCH_DATABASE_URL": db.settings.database_url, "AMBERWATCH_DATA_DIR": str(tmp_path)}


def test_cli_s1_water_and_track(cli_env, tmp_path) -> None:
    import rasterio
    env = cli_env
    camargue = next(shared("sentinel1", "pyrosar-gamma-geo-vv").glob("*_db.tif"))
    out = tmp_path / "water.tif"
    res = run_cli("s1", "water", str(camargue), "--out", str(out), env=env)
    assert res.exit_code == 0, res.output
    assert "VV -15.00 dB" in res.output and "water 22." in res.output
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32631 and 0.2 < float((src.read(1) == 1).mean()) < 0.25
    zipped = next(shared("sentinel1", "pyrosar-gamma-geo-vv").glob("*.zip"))
    res = run_cli("s1", "water", str(zipped), "--out", str(out), env=env)
    assert res.exit_code == 2 and "metadata only" in res.output and str(zipped.parent) not in res.output
    before = next(shared(*OPERA, "2021-11-19").glob("*T137-292320-IW2_*_VV.tif"))
    after = next(shared(*OPERA, "2021-12-19").glob("*T137-292320-IW2_*_VV.tif"))
    res = run_cli("s1", "track", "--before", str(before), "--after", str(after), env=env)
    assert res.exit_code == 0, res.output
    assert "change threshold" in res.output and "0 new site events" in res.output
