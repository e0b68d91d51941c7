"""/ows GetMap latency: mapserv as a CGI subprocess per request vs the supervised FastCGI pool (publish.fcgi).

Starts its own embedded PostGIS in a temp dir, stores N synthetic detections through the store code
(``store.queries.runs.create`` + ``store.queries.detections.add_detections``), publishes them (``publish.refresh``),
serves the app with uvicorn twice (``AMBERWATCH_MAPSERV_WORKERS=0`` = CGI, then the pool) and times GetMap
requests from a separate client process (so the client does not share the server's GIL), at concurrency 1 and 8,
each client thread on its own keep-alive connection. The bounding boxes rotate so no answer is a 304.

    .venv/bin/python bench/bench_serving.py [--detections 20000] [--requests 200] [--workers 2]
    .venv/bin/python bench/bench_serving.py --url http://127.0.0.1:8080/ows   # time a running /ows (e.g. nginx)
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

LON0, LAT0, LON1, LAT1 = 23.5, 49.5, 30.0, 52.2  # north-west Ukraine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def getmap_targets(path: str, layer: str, n: int = 64) -> list[str]:
    """``n`` GetMap targets over 0.1-degree windows inside the seeded area (WMS 1.3.0, EPSG:4326 lat/lon)."""
    rnd = random.Random(7)
    out = []
    for _ in range(n):
        lon, lat = rnd.uniform(LON0, LON1 - 0.1), rnd.uniform(LAT0, LAT1 - 0.1)
        out.append(path + "?" + urllib.parse.urlencode({
            "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": layer, "STYLES": "",
            "CRS": "EPSG:4326", "BBOX": f"{lat},{lon},{lat + 0.1},{lon + 0.1}", "WIDTH": "256", "HEIGHT": "256",
            "FORMAT": "image/png", "TRANSPARENT": "TRUE"}))
    return out


# -- the client (runs in a child process) --------------------------------------------------------------------------

def client(host: str, port: int, targets: list[str], total: int, concurrency: int) -> dict:
    per_thread = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    def worker(i: int) -> list[float]:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        times = []
        for k in range(per_thread[i]):
            target = targets[(i * 131 + k) % len(targets)]
            t0 = time.perf_counter()
            conn.request("GET", target)
            resp = conn.getresponse()
            body = resp.read()
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200 or body[:4] != b"\x89PNG":
                raise RuntimeError(f"{resp.status}: {body[:300]!r}")
        conn.close()
        return times

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        times = sorted(t for chunk in pool.map(worker, range(concurrency)) for t in chunk)
    wall = time.perf_counter() - t0
    return {"n": len(times), "p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))],
            "rps": len(times) / wall}


def run_client(url: str, layer: str, total: int, concurrency: int) -> dict:
    parts = urllib.parse.urlsplit(url)
    cmd = [sys.executable, __file__, "--client", url, "--layer", layer, "--requests", str(total),
           "--concurrency", str(concurrency)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    del parts
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(url: str, layer: str, total: int, label: str) -> list[str]:
    lines = []
    run_client(url, layer, 16, 2)  # warm-up (pool start, PostGIS caches)
    for c in (1, 8):
        r = run_client(url, layer, total, c)
        lines.append(f"{label:28s} c={c}  n={r['n']}  p50={r['p50']:7.1f} ms  p95={r['p95']:7.1f} ms  "
                     f"{r['rps']:6.1f} req/s")
        print(lines[-1], flush=True)
    return lines


# -- seeding through the store -------------------------------------------------------------------------------------

def seed(store, n_detections: int, n_runs: int) -> None:  # noqa: ANN001 - amberwatch.store.db.Store
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box

    from amberwatch.store.models import ModelVersion, Scene
    from amberwatch.store.queries import runs
    from amberwatch.store.queries.detections import NewDetection, add_detections

    rnd = random.Random(11)
    day = datetime(2024, 6, 1, 9, tzinfo=UTC)
    with store.session() as s:
        scene = Scene(scene_key="BENCH_SERVING", sensor="sentinel2", family="sentinel2", level="L2A", acquired=day,
                      resolution=10.0, crs="EPSG:32635", bands=["B02"], cloud_fraction=0.0,
                      footprint=from_shape(MultiPolygon([box(LON0, LAT0, LON1, LAT1)]), srid=4326),
                      source="bench", reflectance_path="/dev/null", stac_item={})
        model = ModelVersion(name="bench-serving", version="1", family="sentinel2", sha256="0" * 64, card={},
                             metrics={})
        s.add_all([scene, model])
        s.flush()
        scene_id, model_id = scene.id, model.id
    per_run = n_detections // n_runs
    for r in range(n_runs):
        with store.session() as s:
            run = runs.create(s, model_id, scene_id, {}, None)
            dets = []
            for _ in range(per_run):
                x, y = rnd.uniform(LON0, LON1), rnd.uniform(LAT0, LAT1)
                dets.append(NewDetection("pit" if rnd.random() < 0.7 else "pond", rnd.random(), 0.2, None, None,
                                         MultiPolygon([box(x, y, x + 0.0005, y + 0.0004)])))
            add_detections(s, run.id, scene_id, day + timedelta(days=r), dets)
            run.state, run.published_at, run.n_detections, run.progress = "published", datetime.now(UTC), per_run, 1.0


def raw_fastcgi(socket_path: Path, alias: str, total: int, concurrency: int) -> dict:
    """The same GetMaps sent straight to the pool's socket (FastCGI, no HTTP server, no checks)."""
    import asyncio

    from amberwatch.publish.fcgi import fcgi_request

    targets = [t.split("?", 1)[1] for t in getmap_targets("/ows", "detections")]

    async def run() -> tuple[list[float], float]:
        times: list[float] = []

        async def worker(i: int) -> None:
            for k in range(total // concurrency):
                query = f"map={alias}&" + targets[(i * 131 + k) % len(targets)]
                params = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "GATEWAY_INTERFACE": "CGI/1.1",
                          "SERVER_PROTOCOL": "HTTP/1.1", "SCRIPT_NAME": "/ows", "SERVER_NAME": "127.0.0.1",
                          "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1"}
                t0 = time.perf_counter()
                out, _ = await fcgi_request(socket_path, params)
                times.append((time.perf_counter() - t0) * 1000)
                if b"image/png" not in out[:200]:
                    raise RuntimeError(out[:300])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return sorted(times), time.perf_counter() - t0

    times, wall = asyncio.run(run())
    return {"n": len(times), "p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))],
            "rps": len(times) / wall}


def serve_and_measure(store, settings, total: int, label: str) -> list[str]:  # noqa: ANN001
    import uvicorn
    from fastapi import FastAPI

    from amberwatch.publish import mount

    app = FastAPI()
    mount(app, store, settings)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                       lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        lines = measure(f"http://127.0.0.1:{settings.port}/ows", "detections", total, label)
        ows = app.state.ows
        lines.append(f"  (mode after the run: {ows.mode}, pool pids: {ows.pool.pids if ows.pool else '-'})")
        print(lines[-1], flush=True)
        if ows.pool is not None and ows.pool.running:  # the peer without HTTP/Python proxy: mapserv alone
            for c in (1, 8):
                r = raw_fastcgi(ows.pool.socket_path, ows.alias, total, c)
                lines.append(f"{'raw mapserv FastCGI (no HTTP)':28s} c={c}  n={r['n']}  p50={r['p50']:7.1f} ms  "
                             f"p95={r['p95']:7.1f} ms  {r['rps']:6.1f} req/s")
                print(lines[-1], flush=True)
        return lines
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        app.state.ows.close()


def items_with_and_without_count(store, settings, repeat: int) -> None:  # noqa: ANN001
    """OGC API ``items?limit=10`` without a filter: ``count: filtered`` (the generated config) vs pygeoapi's
    exact count of the whole table (the provider forced to ``count: true``)."""
    import urllib.request

    import uvicorn
    from fastapi import FastAPI

    from amberwatch.publish import mount
    from amberwatch.publish.pgprovider import PostgreSQLProvider

    app = FastAPI()
    mount(app, store, settings)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                       lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{settings.port}/ogcapi/collections/detections/items?f=json&limit=10"
    original = PostgreSQLProvider._counts
    try:
        for label, counts in (("count: filtered (no count)", None), ("count: true (exact count)", True)):
            if counts:
                PostgreSQLProvider._counts = lambda self, resulttype, filtered: True  # type: ignore[method-assign]
            urllib.request.urlopen(url, timeout=120).read()
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                body = json.loads(urllib.request.urlopen(url, timeout=120).read())
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            print(f"OAPIF items limit=10 unfiltered, {label:28s} p50={statistics.median(times):7.1f} ms  "
                  f"p95={times[int(0.95 * (len(times) - 1))]:7.1f} ms  numberMatched={body.get('numberMatched')}",
                  flush=True)
    finally:
        PostgreSQLProvider._counts = original  # type: ignore[method-assign]
        uv.should_exit = True
        thread.join(timeout=10)
        app.state.ows.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detections", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="FastCGI workers of the pool")
    ap.add_argument("--url", help="time this running /ows instead of starting one")
    ap.add_argument("--layer", default="detections")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        parts = urllib.parse.urlsplit(args.client)
        targets = getmap_targets(parts.path, args.layer)
        print(json.dumps(client(parts.hostname or "127.0.0.1", parts.port or 80, targets, args.requests,
                                args.concurrency)))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()}")
    if args.url:
        measure(args.url, args.layer, args.requests, args.url)
        return

    from amberwatch.publish import refresh
    from amberwatch.settings import Settings
    from amberwatch.store.db import Store

    tmp = Path(tempfile.mkdtemp(prefix="aw-bench-serving-"))
    tmp.chmod(0o755)
    settings = Settings(data_dir=tmp, embedded_pg_port=free_port(), port=free_port(), mapserv_workers=0)
    store = Store(settings).start()
    try:
        t0 = time.perf_counter()
        seed(store, args.detections, args.runs)
        print(f"stored {args.detections} detections in {args.runs} runs through the store in "
              f"{time.perf_counter() - t0:.1f} s")
        state = refresh(store, settings)
        print(f"published {len(state.layers)} layers, {state.n_detections} detections")
        print(f"GetMap 256x256 px of 0.1 deg windows, layer detections, {args.requests} requests per line")
        serve_and_measure(store, settings, args.requests, "CGI per request")
        fast = settings.model_copy(update={"mapserv_workers": args.workers, "port": free_port()})
        serve_and_measure(store, fast, args.requests, f"FastCGI pool ({args.workers} workers)")
        items_with_and_without_count(store, settings.model_copy(update={"port": free_port()}), 50)
        print(f"load average after {os.getloadavg()}")
    finally:
        store.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
