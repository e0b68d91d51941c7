"""Serving speed, side by side with peers on the same data: OGC API Features (ours vs tipg), WMS GetMap and
WFS GetFeature (ours vs raw MapServer FastCGI behind nginx).

One run: starts its own embedded PostGIS in a temp dir, stores N synthetic detections over the three oblasts'
bounding box (Rivne/Zhytomyr/Volyn, lon 23.5-29.5, lat 49.5-52.0) with ``store.queries.runs.create`` and
``store.queries.detections.bulk_insert_detections`` (COPY), publishes them (``publish.refresh``) and serves
``publish.mount`` (``/ogcapi`` pygeoapi, ``/ows`` MapServer FastCGI pool) with one uvicorn process. The peers read
the same PostGIS view ``published_detections``:

* tipg (``pip install tipg`` into the venv, not a project dependency) as its own uvicorn process;
* the very same ``mapserv`` FastCGI workers (our pool's socket) behind a private nginx: MapServer without our
  Python proxy in front.

The load generator is ``wrk`` (``apt-get install wrk``), one connection per concurrent client, keep-alive, all
traffic to 127.0.0.1, each line bounded by ``--duration`` seconds. Every target rotates over 64 boxes (so no
answer is a cache hit), each target is checked once (status, content) before it is timed, and every server is
warmed up first. The table gives req/s, p50, p95 per line and the ratio ours/peer; the machine's load average is
printed at the start and the end.

    .venv/bin/python bench/bench_serving.py [--detections 1000000] [--duration 8] [--workers 2] [--cgi]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import free_port

LON0, LAT0, LON1, LAT1 = 23.5, 49.5, 29.5, 52.0  # Rivne, Zhytomyr and Volyn oblasts
BOXES = 64
CONCURRENCY = (1, 8)


def boxes(size: float, seed: int, n: int = BOXES) -> list[tuple[float, float, float, float]]:
    """``n`` square windows of ``size`` degrees inside the seeded area (lon0, lat0, lon1, lat1)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        lon, lat = rnd.uniform(LON0, LON1 - size), rnd.uniform(LAT0, LAT1 - size)
        out.append((round(lon, 5), round(lat, 5), round(lon + size, 5), round(lat + size, 5)))
    return out


# -- the targets -----------------------------------------------------------------------------------------------------

Check = Callable[[int, str, bytes], str]  # (status, content type, body) -> a short note; raises when wrong


def check_features(status: int, ctype: str, body: bytes) -> str:
    if status != 200:
        raise RuntimeError(f"{status}: {body[:300]!r}")
    doc = json.loads(body)
    if doc.get("type") != "FeatureCollection" or not doc.get("features"):
        raise RuntimeError(f"no features: {body[:300]!r}")
    return f"{len(doc['features'])} features, {len(body) // 1024} KiB"


def check_png(status: int, ctype: str, body: bytes) -> str:
    if status != 200 or body[:4] != b"\x89PNG":
        raise RuntimeError(f"{status} {ctype}: {body[:300]!r}")
    return f"PNG {len(body) // 1024} KiB"


@dataclass
class Target:
    name: str
    paths: list[str]  # path?query, rotated by the load generator
    check: Check


def oapif_paths(base: str, size: float | None, limit: int, seed: int) -> list[str]:
    if size is None:  # no bbox: first pages at rotating offsets
        return [f"{base}?limit={limit}&offset={i * limit}" for i in range(BOXES)]
    return [f"{base}?bbox={a},{b},{c},{d}&limit={limit}" for a, b, c, d in boxes(size, seed)]


OAPIF_CASES = (("bbox 0.05°, limit 100", 0.05, 100), ("bbox 0.5°, limit 1000", 0.5, 1000),
               ("no bbox, limit 10", None, 10))


def oapif_targets(base: str, extra: str = "") -> list[Target]:
    out = []
    for i, (name, size, limit) in enumerate(OAPIF_CASES):
        paths = [p + extra for p in oapif_paths(base, size, limit, 100 + i)]
        out.append(Target(f"OAPIF items {name}", paths, check_features))
    return out


def ows_targets(path: str, layer: str) -> list[Target]:
    getmap = [path + "?" + urllib.parse.urlencode({
        "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": layer, "STYLES": "",
        "CRS": "EPSG:4326", "BBOX": f"{b},{a},{d},{c}", "WIDTH": "512", "HEIGHT": "512",
        "FORMAT": "image/png", "TRANSPARENT": "TRUE"}) for a, b, c, d in boxes(0.1, 7)]
    out = [Target("WMS GetMap 512² PNG, 0.1° box", getmap, check_png)]
    for i, (size, count) in enumerate(((0.05, 100), (0.5, 1000))):
        paths = [path + "?" + urllib.parse.urlencode({
            "SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature", "TYPENAMES": layer, "COUNT": str(count),
            "OUTPUTFORMAT": "geojson", "SRSNAME": "urn:ogc:def:crs:EPSG::4326",
            "BBOX": f"{b},{a},{d},{c},urn:ogc:def:crs:EPSG::4326"}) for a, b, c, d in boxes(size, 200 + i)]
        out.append(Target(f"WFS GetFeature GeoJSON bbox {size}°, count {count}", paths, check_features))
    return out


# -- the load generator (wrk) ----------------------------------------------------------------------------------------

WRK_LUA = """
local paths = {%s}
local next_id = 0
function setup(thread)
  thread:set("offset", next_id * 17)
  next_id = next_id + 1
end
local k = 0
function request()
  k = k + 1
  return wrk.format("GET", paths[((offset or 0) + k) %% #paths + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p95_us\\": %%d, \\"status\\": %%d, " ..
    "\\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), e.status, e.connect,
    e.read, e.write, e.timeout))
end
"""


@dataclass
class Result:
    rps: float
    p50: float
    p95: float
    errors: int


def wrk(base_url: str, target: Target, concurrency: int, duration: float, workdir: Path) -> Result:
    script = workdir / "wrk.lua"
    script.write_text(WRK_LUA % ", ".join(json.dumps(p) for p in target.paths))
    host = urllib.parse.urlsplit(base_url).hostname
    if host != "127.0.0.1":
        raise ValueError("loopback only")
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s", str(script),
           base_url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((x for x in res.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {res.stdout[-1000:]} {res.stderr[-1000:]}")
    r = json.loads(line.split(" ", 1)[1])
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return Result(r["requests"] / (r["duration_us"] / 1e6), r["p50_us"] / 1000, r["p95_us"] / 1000, errors)


def probe(base_url: str, target: Target) -> str:
    req = urllib.request.Request(base_url + target.paths[0])
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, ctype, body = resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        status, ctype, body = exc.code, exc.headers.get("content-type", ""), exc.read()
    return target.check(status, ctype, body)


def measure(label: str, base_url: str, targets: list[Target], duration: float, workdir: Path,
            results: dict[tuple[str, str, int], Result]) -> None:
    for t in targets:
        note = probe(base_url, t)
        wrk(base_url, t, 2, min(2.0, duration), workdir)  # warm-up: caches, pool, connections
        for c in CONCURRENCY:
            r = wrk(base_url, t, c, duration, workdir)
            results[(t.name, label, c)] = r
            print(f"  {label:28s} {t.name:44s} c={c}  {r.rps:7.1f} req/s  p50 {r.p50:7.1f} ms  p95 {r.p95:7.1f} ms"
                  f"  errors {r.errors}  ({note})", flush=True)


# -- seeding through the store ---------------------------------------------------------------------------------------

def synthetic(n: int, seed: int) -> Iterator:  # Iterator[NewDetection]
    import numpy as np
    import shapely

    from amberwatch.store.queries.detections import NewDetection

    rng = np.random.default_rng(seed)
    step = 100_000
    # A run stores its polygons in the order the vectorizer emits them: strip by strip (north to south), west to
    # east within a strip (detect.vectorize.StripVectorizer). Random positions are stored in that order.
    all_x, all_y = rng.uniform(LON0, LON1 - 0.0005, n), rng.uniform(LAT0, LAT1 - 0.0004, n)
    order = np.lexsort((all_x, -np.floor(all_y / 0.05)))
    all_x, all_y = all_x[order], all_y[order]
    for start in range(0, n, step):
        m = min(step, n - start)
        xs, ys = all_x[start:start + m], all_y[start:start + m]
        polys = shapely.box(xs, ys, xs + rng.uniform(0.0002, 0.0008, m), ys + rng.uniform(0.0002, 0.0006, m))
        multis = shapely.multipolygons(polys, indices=np.arange(m))
        classes = np.where(rng.random(m) < 0.7, "pit", "pond")
        conf = rng.random(m)
        areas = shapely.area(polys) * 111_000 * 70_000 / 10_000  # roughly, in ha at these latitudes
        for i in range(m):
            yield NewDetection(str(classes[i]), float(conf[i]), float(areas[i]), None, None, multis[i])


def seed(store, n_detections: int, n_runs: int) -> None:  # noqa: ANN001 - amberwatch.store.db.Store
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box

    from amberwatch.store.models import ModelVersion, Scene
    from amberwatch.store.queries import runs
    from amberwatch.store.queries.detections import bulk_insert_detections

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
    for r in range(n_runs):
        per_run = n_detections // n_runs + (1 if r < n_detections % n_runs else 0)
        with store.session() as s:
            run = runs.create(s, model_id, scene_id, {}, None)
            n = bulk_insert_detections(s.connection(), run.id, scene_id, day + timedelta(days=r),
                                       synthetic(per_run, 11 + r))
            run.state, run.published_at, run.n_detections, run.progress = "published", datetime.now(UTC), n, 1.0


# -- the servers -----------------------------------------------------------------------------------------------------

class Ours:
    """``publish.mount`` (``/ogcapi`` + ``/ows``) in uvicorn, in a thread of this process (the client is wrk)."""

    def __init__(self, store, settings) -> None:  # noqa: ANN001
        import uvicorn
        from fastapi import FastAPI

        from amberwatch.publish import mount

        self.app = FastAPI()
        mount(self.app, store, settings)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.uv = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=settings.port, log_level="warning",
                                                lifespan="off"))
        self.thread = threading.Thread(target=self.uv.run, daemon=True)

    def __enter__(self) -> Ours:
        self.thread.start()
        while not self.uv.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.uv.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.ows.close()


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def start_tipg(database_url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TIPG_DB_SCHEMAS": '["public"]',
           "TIPG_DB_TABLES": '["public.published_detections"]', "TIPG_DB_SPATIAL_EXTENT": "false",
           "TIPG_DB_DATETIME_EXTENT": "false", "TIPG_MAX_FEATURES_PER_QUERY": "10000"}
    log = (workdir / "tipg.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning", "--no-access-log"], env=env, cwd=workdir,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/collections", proc)
    except RuntimeError as exc:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"tipg: {exc}: {(workdir / 'tipg.log').read_text()[-1500:]}") from exc
    return proc, url


NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location /ows {{
            fastcgi_pass unix:{sock};
            fastcgi_param QUERY_STRING "map={alias}&$query_string";
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param SCRIPT_NAME /ows;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_NAME 127.0.0.1;
            fastcgi_param SERVER_PORT {port};
            fastcgi_param REMOTE_ADDR $remote_addr;
        }}
    }}
}}
"""


def start_nginx(sock: Path, alias: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    run = workdir / "nginx"
    run.mkdir(exist_ok=True)
    port = free_port()
    (run / "nginx.conf").write_text(NGINX_CONF.format(run=run, port=port, sock=sock, alias=alias))
    proc = subprocess.Popen([nginx, "-p", str(run), "-c", str(run / "nginx.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, url
        if proc.poll() is not None or time.monotonic() - t0 > 20:
            proc.kill()
            raise RuntimeError(f"nginx did not start: {(run / 'error.log').read_text()[-1000:]}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the table -------------------------------------------------------------------------------------------------------

def table(results: dict[tuple[str, str, int], Result], pairs: list[tuple[str, str, str]]) -> str:
    """``pairs``: (test, our label, peer label). One row per test and concurrency, ratio = ours / peer req/s."""
    rows = ["| test | c | ours req/s | p50 | p95 | peer | peer req/s | p50 | p95 | req/s ours/peer | p95 ours/peer |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(r: Result | None) -> str:
        if r is None:
            return "– | – | –"
        err = f" ({r.errors} errors)" if r.errors else ""
        return f"{r.rps:.1f}{err} | {r.p50:.1f} ms | {r.p95:.1f} ms"

    for test, ours, peer in pairs:
        for c in CONCURRENCY:
            a, b = results.get((test, ours, c)), results.get((test, peer, c))
            ratio = f"{a.rps / b.rps:.2f}" if a and b and b.rps else "–"
            p95 = f"{a.p95 / b.p95:.2f}" if a and b and b.p95 else "–"
            rows.append(f"| {test} | {c} | {cell(a)} | {peer} | {cell(b)} | {ratio} | {p95} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detections", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured line")
    ap.add_argument("--workers", type=int, default=2, help="mapserv FastCGI workers of our pool")
    ap.add_argument("--cgi", action="store_true", help="also time /ows GetMap with a CGI process per request")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load_start = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average at start {load_start}", flush=True)

    from amberwatch.publish import refresh
    from amberwatch.publish.layers import MAP_ALIAS
    from amberwatch.settings import Settings
    from amberwatch.store.db import Store

    tmp = Path(tempfile.mkdtemp(prefix="aw-bench-serving-"))
    tmp.chmod(0o755)
    settings = Settings(data_dir=tmp, embedded_pg_port=free_port(), port=free_port(), mapserv_workers=args.workers)
    store = Store(settings).start()
    results: dict[tuple[str, str, int], Result] = {}
    pairs: list[tuple[str, str, str]] = []
    ours_label, tipg_label, ms_label = "ours", "tipg", "mapserv FastCGI + nginx"
    try:
        t0 = time.perf_counter()
        seed(store, args.detections, args.runs)
        print(f"stored {args.detections} detections in {args.runs} runs (runs.create + bulk_insert_detections) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        state = refresh(store, settings)
        print(f"published {len(state.layers)} layers, {state.n_detections} detections; wrk, {args.duration:g} s "
              f"per line, concurrency {CONCURRENCY}", flush=True)

        ogc = oapif_targets("/ogcapi/collections/detections/items", "&f=json")
        ows = ows_targets("/ows", "detections")
        with Ours(store, settings) as ours:
            measure(ours_label, ours.url, ogc + ows, args.duration, tmp, results)
            pool = ours.app.state.ows.pool
            if pool is not None and pool.running:
                print(f"  (our /ows: {ours.app.state.ows.mode}, pool pids {pool.pids})", flush=True)
                try:
                    proc, url = start_nginx(pool.socket_path, MAP_ALIAS, tmp)
                except (OSError, RuntimeError) as exc:
                    print(f"  raw MapServer FastCGI peer not measured: {exc}", flush=True)
                else:
                    try:
                        measure(ms_label, url, ows, args.duration, tmp, results)
                    finally:
                        stop(proc)
            else:
                print("  our /ows has no FastCGI pool: raw MapServer FastCGI peer not measured", flush=True)
        pairs += [(t.name, ours_label, ms_label) for t in ows]

        try:
            proc, url = start_tipg(store.url.replace("postgresql+psycopg2://", "postgresql://"), tmp)
        except (OSError, RuntimeError) as exc:
            print(f"  tipg not measured: {exc}", flush=True)
        else:
            try:
                measure(tipg_label, url, oapif_targets("/collections/public.published_detections/items"),
                        args.duration, tmp, results)
            finally:
                stop(proc)
        pairs = [(t.name, ours_label, tipg_label) for t in ogc] + pairs

        if args.cgi:
            cgi = settings.model_copy(update={"mapserv_workers": 0, "port": free_port()})
            with Ours(store, cgi) as ours:
                measure("ours, CGI per request", ours.url, ows[:1], args.duration, tmp, results)
            pairs.append((ows[0].name, ours_label, "ours, CGI per request"))

        print()
        print(f"{args.detections} detections, {os.cpu_count()} cores, wrk -t1 -c<c> -d{args.duration:g}s")
        print(table(results, pairs))
        print(f"\nload average at start {load_start}, at end {os.getloadavg()}")
    finally:
        store.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
