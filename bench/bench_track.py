"""Benchmark site tracking: time of ``track.update_sites`` per published run as the number of sites grows.

Starts an embedded PostGIS in a temporary directory, optionally loads the real oblast/hromada/Ramsar layers from
../shared/data (so the admin-position cost is included), then publishes ``--dates`` scenes over one footprint, each
with ``--sites`` mining sites of 2-4 pits/ponds (sites grow, get abandoned, new ones appear), and prints the time
per ``update_sites`` call and per site, then the time of ``rebuild_sites`` over everything.

    PYTHONPATH=service .venv/bin/python bench/bench_track.py [--sites 300] [--dates 4]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import SHARED_DATA as SHARED
from _common import free_port
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import text

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, Run, Scene
from amberwatch.track import rebuild_sites, update_sites
from amberwatch.track.geo import to_metric, to_wgs84
from amberwatch.usecases.monitoring import load_layer

ORIGIN = (26.3, 51.45)
FOOTPRINT = box(26.2, 51.35, 27.3, 51.95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=300)
    ap.add_argument("--dates", type=int, default=4)
    ap.add_argument("--no-layers", action="store_true", help="Skip loading the admin/protected layers.")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-track-", dir="/tmp"))
    os.chmod(root, 0o755)
    store = Store(Settings(data_dir=root, embedded_pg_port=free_port())).start()
    try:
        if not args.no_layers and SHARED.exists():
            t0 = time.perf_counter()
            with store.session() as session:
                load_layer(session, "oblast", [SHARED / "boundaries/geoboundaries-ukr/geoBoundaries-UKR-ADM1.geojson"])
                load_layer(session, "hromada",
                           [SHARED / "boundaries/kse-hromadas-border/hromadas_30km_from_border.shp"])
                load_layer(session, "protected_area", [SHARED / "protected_areas/ramsar-ua-nw"])
            print(f"layers loaded in {time.perf_counter() - t0:.1f} s")
        rng = random.Random(42)
        o = to_metric(Point(ORIGIN))
        cols = int(args.sites ** 0.5) + 1
        centres = [(o.x + (i % cols) * 1500.0, o.y + (i // cols) * 1500.0) for i in range(args.sites)]
        timings = []
        for k in range(args.dates):
            when = datetime(2017 + k, 6, 15, tzinfo=UTC)
            with store.session() as session:
                scene = Scene(scene_key=f"BENCH_{k}", sensor="sentinel2a", family="sentinel2", level="L2A",
                              acquired=when, resolution=10.0, crs="EPSG:32635", bands=["red"], cloud_fraction=0.0,
                              footprint=from_shape(MultiPolygon([FOOTPRINT]), srid=4326), source="bench",
                              reflectance_path="/nonexistent.tif", stac_item={})
                run = Run(state="running", parameters={}, progress=0.0, n_detections=0)
                run.scenes = [scene]
                session.add(run)
                session.flush()
                n = 0
                for i, (x, y) in enumerate(centres):
                    if i % args.dates > k or rng.random() < 0.15:  # sites appear over time; some not seen
                        continue
                    for j in range(rng.randint(2, 4)):
                        side = 30 + 10 * k + rng.random() * 20
                        g = to_wgs84(box(x + j * 50, y, x + j * 50 + side, y + side))
                        session.add(Detection(run_id=run.id, scene_id=scene.id, cls="pit" if j % 3 else "pond",
                                              confidence=0.8, area_ha=side * side / 1e4, observed_at=when,
                                              geom=from_shape(MultiPolygon([g]), srid=4326)))
                        n += 1
                session.flush()
                t0 = time.perf_counter()
                events = update_sites(session, run.id)
                dt = time.perf_counter() - t0
                run.state = "published"
                n_sites = session.scalar(text("select count(*) from sites where merged_into_id is null"))
            timings.append(dt)
            print(f"date {k + 1}/{args.dates}: {n} detections, {n_sites} sites, {len(events)} new events, "
                  f"update_sites {dt:.2f} s ({1000 * dt / max(n_sites, 1):.1f} ms/site)")
        with store.session() as session:
            t0 = time.perf_counter()
            rebuild_sites(session)
            dt = time.perf_counter() - t0
            n_sites = session.scalar(text("select count(*) from sites where merged_into_id is null"))
        print(f"rebuild_sites: {n_sites} sites in {dt:.2f} s ({1000 * dt / max(n_sites, 1):.1f} ms/site)")
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
