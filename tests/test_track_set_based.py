"""Site tracking reads and writes all sites of a run with a fixed number of SQL statements (set-based, no round
trip per site), and gives the same sites as publishing them in smaller runs would (real PostGIS)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import event, text

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, Run, Scene
from amberwatch.track import update_sites
from amberwatch.track.geo import to_metric, to_wgs84

ORIGIN = to_metric(Point(26.55, 51.72))
FOOTPRINT = MultiPolygon([box(26.3, 51.6, 26.9, 51.9)])
DATES = [datetime(2019 + k, 6, 15, tzinfo=UTC) for k in range(3)]


@pytest.fixture(scope="module")
def db(make_database) -> Iterator[Store]:
    url = make_database("amberwatch_track_set")
    st = Store(Settings(database_url=url)).start()
    yield st
    st.stop()


@pytest.fixture
def clean(db: Store) -> Iterator[Store]:
    yield db
    with db.session() as s:
        s.execute(text("truncate events, site_observations, detections, sites, run_scenes, runs, scenes cascade"))


def publish(db: Store, when: datetime, n_sites: int, grow: float) -> tuple[int, int]:
    """A run with ``n_sites`` sites of two pits each (pits ``grow`` m larger each date); (statements, events)."""
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    with db.session() as s:
        scene = Scene(scene_key=f"SET_{when:%Y}_{n_sites}", sensor="sentinel2a", family="sentinel2", level="L2A",
                      acquired=when, resolution=10.0, crs="EPSG:32635", bands=["red"], cloud_fraction=0.0,
                      footprint=from_shape(FOOTPRINT, srid=4326), source="test", reflectance_path="/x.tif",
                      stac_item={})
        run = Run(state="running", parameters={}, progress=0.0, n_detections=0)
        run.scenes = [scene]
        s.add(run)
        s.flush()
        for i in range(n_sites):
            x, y = ORIGIN.x + (i % 10) * 1000.0, ORIGIN.y + (i // 10) * 1000.0
            for j, cls in enumerate(("pit", "pond")):
                side = 40.0 + grow
                g = to_wgs84(box(x + j * 60, y, x + j * 60 + side, y + side))
                s.add(Detection(run_id=run.id, scene_id=scene.id, cls=cls, confidence=0.9, area_ha=side * side / 1e4,
                                observed_at=when, geom=from_shape(MultiPolygon([g]), srid=4326)))
        s.flush()
        engine = s.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            events = update_sites(s, run.id)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        run.state = "published"
    return statements, len(events)


def test_statements_do_not_grow_with_the_sites(clean: Store) -> None:
    few = [publish(clean, when, 3, 30.0 * k) for k, when in enumerate(DATES)]
    with clean.session() as s:
        s.execute(text("truncate events, site_observations, detections, sites, run_scenes, runs, scenes cascade"))
    many = [publish(clean, when, 30, 30.0 * k) for k, when in enumerate(DATES)]
    assert [n for n, _ in few] == [n for n, _ in many]  # same statements for 3 sites as for 30
    assert max(n for n, _ in many) <= 25
    assert [e for _, e in many] == [30, 30, 0]  # new, then active (grew), then no change: no event
    with clean.session() as s:
        rows = s.execute(text("select status, n_observations, count(*) from sites group by 1, 2")).all()
        obs = s.scalar(text("select count(*) from site_observations"))
        linked = s.scalar(text("select count(*) from detections where site_id is null"))
    assert [tuple(r) for r in rows] == [("active", 3, 30)] and obs == 90 and linked == 0
