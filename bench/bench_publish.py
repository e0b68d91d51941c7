"""Publishing speed: refresh time and request latency of /ows (MapServer CGI per request) and /ogcapi (pygeoapi).

Starts its own embedded PostGIS in a temp dir, writes synthetic published runs over north-west Ukraine,
runs ``publish.refresh``, serves the app with uvicorn and times real requests. Prints the figures.

    .venv/bin/python bench/bench_publish.py [--detections 100000] [--sites 5000] [--repeat 20]
    .venv/bin/python bench/bench_publish.py --url http://127.0.0.1:8080   # time an already running deployment
                                                                          # (e.g. infra/scripts/run-production.sh)
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SEED_SQL = [
    """insert into scenes (scene_key, sensor, family, level, acquired, resolution, crs, bands, cloud_fraction,
                           footprint, source, reflectance_path, stac_item)
       values ('BENCH_SCENE', 'sentinel2', 'sentinel2', 'L2A', '2024-06-01T09:00Z', 10, 'EPSG:32635', '{B02}', 0,
               st_makeenvelope(23.5, 49.5, 30.0, 52.2, 4326), 'bench', '/dev/null', '{}')""",
    """insert into model_versions (name, version, family, sha256, card, metrics)
       values ('bench', '1', 'sentinel2', repeat('0', 64), '{}', '{}')""",
    """insert into runs (model_version_id, state, progress, parameters, n_detections, published_at)
       select (select id from model_versions where name = 'bench'), 'published', 1, '{}', :per_run, now()
       from generate_series(1, :runs)""",
    """insert into detections (run_id, scene_id, class, confidence, area_ha, observed_at, geom)
       select r.id, (select id from scenes where scene_key = 'BENCH_SCENE'),
              case when random() < 0.7 then 'pit' else 'pond' end, random(), 0.2,
              '2024-06-01T09:00Z'::timestamptz + (r.id || ' days')::interval,
              st_multi(st_makeenvelope(x, y, x + 0.0005, y + 0.0004, 4326))
       from runs r, lateral (select 23.5 + random() * 6.5 as x, 49.5 + random() * 2.7 as y
                             from generate_series(1, :per_run) where r.id > 0) g""",
    """insert into sites (geom, max_geom, status, first_seen, last_seen, last_observed, area_ha, max_area_ha,
                          pit_area_ha, pond_area_ha, confidence, n_observations, first_run_id, last_run_id)
       select st_multi(st_makeenvelope(x, y, x + 0.002, y + 0.0015, 4326)),
              st_multi(st_makeenvelope(x, y, x + 0.002, y + 0.0015, 4326)),
              (array['new','active','abandoned','recovering'])[1 + floor(random() * 4)::int],
              now(), now(), now(), 2, 2, 1.5, 0.5, random(), 1,
              (select min(id) from runs), (select max(id) from runs)
       from (select 23.5 + random() * 6.5 as x, 49.5 + random() * 2.7 as y from generate_series(1, :sites)) g""",
    "analyze",
]


def timed(url: str, repeat: int) -> tuple[float, float, int]:
    """p50 and p95 latency (ms) and the response size of ``repeat`` sequential GETs (after one warm-up)."""
    urllib.request.urlopen(url, timeout=120).read()
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            size = len(r.read())
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], size


def requests(base: str, run_layer: str) -> dict[str, str]:
    wms = f"{base}/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&STYLES=&FORMAT=image/png&WIDTH=512&HEIGHT=512"
    small = "50.60,26.30,50.65,26.35"  # lat/lon order for EPSG:4326 in WMS 1.3.0
    return {
        "WMS GetCapabilities": f"{base}/ows?SERVICE=WMS&REQUEST=GetCapabilities",
        "WMS GetMap mining_sites 512px region": f"{wms}&CRS=EPSG:3857&LAYERS=mining_sites"
        "&BBOX=2616000,6375000,3340000,6820000",
        "WMS GetMap detections 512px 0.05deg": f"{wms}&CRS=EPSG:4326&LAYERS=detections&BBOX={small}",
        f"WMS GetMap {run_layer} 512px 0.05deg": f"{wms}&CRS=EPSG:4326&LAYERS={run_layer}&BBOX={small}",
        "WFS GetFeature detections GeoJSON 0.5deg": f"{base}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature"
        "&TYPENAMES=detections&OUTPUTFORMAT=geojson&BBOX=50.5,26.0,51.0,26.5,urn:ogc:def:crs:EPSG::4326",
        "OGC API items detections 0.5deg limit=1000": f"{base}/ogcapi/collections/detections/items?f=json"
        "&bbox=26.0,50.5,26.5,51.0&limit=1000",
        "OGC API items mining_sites 0.05deg limit=100": f"{base}/ogcapi/collections/mining_sites/items?f=json"
        "&bbox=26.30,50.60,26.35,50.65&limit=100",
    }


def report(base: str, run_layer: str, repeat: int) -> None:
    print(f"{'request':48s} {'p50 ms':>8s} {'p95 ms':>8s} {'bytes':>10s}")
    for name, url in requests(base, run_layer).items():
        p50, p95, size = timed(url, repeat)
        print(f"{name:48s} {p50:8.1f} {p95:8.1f} {size:10d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detections", type=int, default=100_000, help="detections in total (over --runs runs)")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--sites", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--url", help="time this running deployment instead of starting one")
    ap.add_argument("--run-layer", default="run_1")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.url:
        report(args.url.rstrip("/"), args.run_layer, args.repeat)
        return

    import uvicorn
    from fastapi import FastAPI

    from amberwatch.publish import mount, refresh
    from amberwatch.settings import Settings
    from amberwatch.store.db import Store

    tmp = Path(tempfile.mkdtemp(prefix="aw-bench-publish-"))
    tmp.chmod(0o755)
    port = free_port()
    settings = Settings(data_dir=tmp, embedded_pg_port=free_port(), port=port)
    store = Store(settings).start()
    uv = None
    try:
        t0 = time.perf_counter()
        with store.engine.begin() as conn:
            params = {"runs": args.runs, "per_run": args.detections // args.runs, "sites": args.sites}
            for sql in SEED_SQL:
                conn.execute(text(sql), params)
        print(f"seeded {args.detections} detections in {args.runs} runs and {args.sites} sites "
              f"in {time.perf_counter() - t0:.1f} s")
        state = refresh(store, settings)
        print(f"refresh (first, creates {len(state.created_views)} run views): {state.seconds * 1000:.0f} ms")
        state = refresh(store, settings)
        print(f"refresh (again): {state.seconds * 1000:.0f} ms; layers: {', '.join(state.layers)}")

        app = FastAPI()
        mount(app, store, settings)
        uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        threading.Thread(target=uv.run, daemon=True).start()
        while not uv.started:
            time.sleep(0.05)
        print(f"/ows = mapserv CGI subprocess per request; {args.repeat} sequential requests each")
        report(f"http://127.0.0.1:{port}", state.layers[2] if len(state.layers) > 2 else "run_1", args.repeat)
    finally:
        if uv is not None:
            uv.should_exit = True
        store.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
