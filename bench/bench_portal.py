"""The geoportal's map in a real browser: first paint and pan/zoom frame times with many sites and detections.

Starts its own embedded PostGIS in a temp dir and seeds it through the store and the tracking use case: one run
with one detection per site (``store.queries.runs.create`` + ``store.queries.detections.add_detections``, then
``track.update_sites`` makes the sites and their events), then further published runs holding the remaining
detections (near the sites) until ``--detections`` is reached. Serves the app with uvicorn and drives Debian's
chromium with Playwright (headless: WebGL is software-rendered by SwiftShader, so frame times are an upper bound
of what a desktop GPU gives).

Measured per page load (``--loads``, median reported): time to first contentful paint (Performance API), time until
the map is idle with every visible tile drawn (``#map[data-state=idle]``, recorded by a MutationObserver), and the
bytes transferred. Then at three zooms (the fitted view, 9 and 12 at the centre of the data) a 1 s pan and a 1 s
zoom-in animation, timing every frame with requestAnimationFrame: p50/p95/max frame interval, frames over 50 ms, and
the time until the map is idle again (tiles loaded and drawn).

    .venv/bin/python bench/bench_portal.py                       # 2,000 sites / 20,000 detections
    .venv/bin/python bench/bench_portal.py --sites 20000 --detections 1000000
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import free_port

LON0, LAT0, LON1, LAT1 = 23.5, 49.5, 30.0, 52.2  # north-west Ukraine
CHROMIUM = "/usr/bin/chromium"
BATCH = 20_000


def seed(store, n_sites: int, n_detections: int, extra_runs: int) -> dict:  # noqa: ANN001 - Store
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box

    from amberwatch.store.models import ModelVersion, Scene
    from amberwatch.store.queries import runs
    from amberwatch.store.queries.detections import NewDetection, add_detections
    from amberwatch.track import update_sites

    rnd = random.Random(11)
    day = datetime(2023, 6, 1, 9, tzinfo=UTC)
    centres = [(rnd.uniform(LON0, LON1), rnd.uniform(LAT0, LAT1)) for _ in range(n_sites)]

    def det(x: float, y: float, grow: float) -> NewDetection:
        w, h = (0.0006 + rnd.random() * 0.0008) * grow, (0.0004 + rnd.random() * 0.0005) * grow
        return NewDetection("pit" if rnd.random() < 0.7 else "pond", 0.6 + 0.4 * rnd.random(),
                            w * h * 7.0e5, None, None, MultiPolygon([box(x, y, x + w, y + h)]))

    t0 = time.perf_counter()
    with store.session() as s:
        scene = Scene(scene_key="BENCH_PORTAL", sensor="sentinel2", family="sentinel2", level="L2A", acquired=day,
                      resolution=10.0, crs="EPSG:32635", bands=["B02"], cloud_fraction=0.0,
                      footprint=from_shape(MultiPolygon([box(LON0, LAT0, LON1 + 0.01, LAT1 + 0.01)]), srid=4326),
                      source="bench", reflectance_path="/dev/null", stac_item={})
        model = ModelVersion(name="bench-portal", version="1", family="sentinel2", sha256="0" * 64, card={},
                             metrics={})
        s.add_all([scene, model])
        s.flush()
        scene_id, model_id = scene.id, model.id
    with store.session() as s:  # the first run: one detection per site, tracked into sites
        run = runs.create(s, model_id, scene_id, {}, None)
        add_detections(s, run.id, scene_id, day, (det(x, y, 1.0) for x, y in centres))
        update_sites(s, run.id)
        run.state, run.published_at, run.n_detections, run.progress = "published", datetime.now(UTC), n_sites, 1.0
    t_sites = time.perf_counter() - t0
    left = max(0, n_detections - n_sites)
    per_run = -(-left // extra_runs) if left else 0
    for r in range(extra_runs if left else 0):
        n = min(per_run, left)
        left -= n
        with store.session() as s:
            run = runs.create(s, model_id, scene_id, {}, None)
            for start in range(0, n, BATCH):
                add_detections(s, run.id, scene_id, day + timedelta(days=30 * (r + 1)),
                               (det(*centres[rnd.randrange(n_sites)], 1.0 + 0.1 * r)
                                for _ in range(min(BATCH, n - start))))
            run.state, run.published_at, run.n_detections, run.progress = "published", datetime.now(UTC), n, 1.0
    with store.session() as s:
        from sqlalchemy import text

        counts = dict(s.execute(text("select (select count(*) from sites) as sites,"
                                     " (select count(*) from detections) as detections,"
                                     " (select count(*) from runs) as runs")).mappings().one())
        s.execute(text("analyze"))
    counts["seed_s"] = time.perf_counter() - t0
    counts["sites_s"] = t_sites
    return counts


FRAME_JS = """async ([kind, amount]) => {
  const map = window.amberwatchMap;
  const times = [];
  let run = true;
  const tick = (t) => { times.push(t); if (run) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  await new Promise(r => setTimeout(r, 50));
  const t0 = performance.now();
  if (kind === "pan") map.panBy([amount, amount / 2], {duration: 1000});
  else map.zoomTo(map.getZoom() + amount, {duration: 1000});
  await new Promise(r => map.once("moveend", r));
  const moved = performance.now() - t0;
  run = false;
  await new Promise(r => { if (map.loaded() && map.areTilesLoaded()) r(); else map.once("idle", r); });
  const idle = performance.now() - t0;
  const dts = [];
  for (let i = 1; i < times.length; i++) if (times[i] >= t0) dts.push(times[i] - times[i - 1]);
  return {moved, idle, dts};
}"""

IDLE_OBSERVER = """(() => {
  window.__awIdle = null;
  const watch = () => {
    const el = document.getElementById("map");
    if (!el) { requestAnimationFrame(watch); return; }
    const check = () => {
      if (el.dataset.state === "idle" && window.__awIdle === null) window.__awIdle = performance.now();
    };
    new MutationObserver(check).observe(el, {attributes: true, attributeFilter: ["data-state"]});
    check();
  };
  document.addEventListener("DOMContentLoaded", watch);
})();"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def measure(base: str, loads: int, centre: tuple[float, float]) -> tuple[list[dict], list[dict]]:
    from playwright.sync_api import sync_playwright

    first: list[dict] = []
    moves: list[dict] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for i in range(loads):
            ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
            tiles: list[int] = []  # the map's worker fetches the tiles: count them from the context's responses

            def on_response(response, tiles=tiles) -> None:  # noqa: ANN001
                if "/tiles/" in response.url:
                    tiles.append(int(response.headers.get("content-length") or 0))

            ctx.on("response", on_response)
            page = ctx.new_page()
            page.add_init_script(IDLE_OBSERVER)
            page.goto(base + "/")
            page.wait_for_function("window.__awIdle !== null", timeout=120_000)
            m = page.evaluate("""() => {
              const fcp = performance.getEntriesByName("first-contentful-paint")[0];
              const bytes = performance.getEntriesByType("resource").reduce((a, e) => a + (e.transferSize || 0), 0)
                + (performance.getEntriesByType("navigation")[0]?.transferSize || 0);
              return {fcp: fcp ? fcp.startTime : null, idle: window.__awIdle, bytes,
                      zoom: window.amberwatchMap.getZoom()};
            }""")
            m["load"], m["tiles"], m["tile_bytes"] = i + 1, len(tiles), sum(tiles)
            m["bytes"] += m["tile_bytes"]
            first.append(m)
            if i == loads - 1:
                for label, zoom in (("fit", None), ("z9", 9.0), ("z12", 12.0)):
                    if zoom is not None:
                        page.evaluate(f"window.amberwatchMap.jumpTo({{center: [{centre[0]}, {centre[1]}], "
                                      f"zoom: {zoom}}})")
                        page.wait_for_function("window.amberwatchMap.loaded() && "
                                               "window.amberwatchMap.areTilesLoaded()", timeout=120_000)
                        page.wait_for_timeout(500)
                    for kind, amount in (("pan", 400), ("zoom", 1)):
                        r = page.evaluate(FRAME_JS, [kind, amount])
                        dts = r["dts"]
                        moves.append({"view": label, "kind": kind, "frames": len(dts),
                                      "p50": pct(dts, 0.5), "p95": pct(dts, 0.95), "max": max(dts or [0]),
                                      "over50": sum(1 for d in dts if d > 50), "moved": r["moved"],
                                      "idle": r["idle"]})
                        page.wait_for_timeout(300)
                # the baseline: the same animations at zoom 9 with every data layer switched off (an empty map)
                off = "mining_sites,detections,protected_areas,hromadas,raions,oblasts"
                page.goto(f"{base}/#map=9/{centre[1]:.4f}/{centre[0]:.4f}&off={off}")
                page.reload()
                page.wait_for_function("window.amberwatchMap && window.amberwatchMap.loaded()", timeout=120_000)
                page.wait_for_timeout(500)
                for kind, amount in (("pan", 400), ("zoom", 1)):
                    r = page.evaluate(FRAME_JS, [kind, amount])
                    dts = r["dts"]
                    moves.append({"view": "empty", "kind": kind, "frames": len(dts), "p50": pct(dts, 0.5),
                                  "p95": pct(dts, 0.95), "max": max(dts or [0]),
                                  "over50": sum(1 for d in dts if d > 50), "moved": r["moved"], "idle": r["idle"]})
            ctx.close()
        browser.close()
    return first, moves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=2000)
    ap.add_argument("--detections", type=int, default=20_000)
    ap.add_argument("--extra-runs", type=int, default=4, help="Runs holding the detections beyond one per site.")
    ap.add_argument("--loads", type=int, default=3, help="Page loads (cold browser context each).")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    import uvicorn

    from amberwatch.settings import Settings
    from amberwatch.store.db import Store
    from amberwatch.web.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="bench-portal-", dir="/tmp"))
    tmp.chmod(0o755)
    settings = Settings(data_dir=tmp, embedded_pg_port=free_port(), port=free_port())
    store = Store(settings).start()
    server = None
    try:
        counts = seed(store, args.sites, args.detections, args.extra_runs)
        print(f"seeded {counts['sites']} sites, {counts['detections']} detections in {counts['runs']} runs "
              f"in {counts['seed_s']:.1f} s (sites tracked in {counts['sites_s']:.1f} s)", flush=True)
        app = create_app(settings, store, worker=False)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.1)
        first, moves = measure(f"http://127.0.0.1:{settings.port}", args.loads,
                               ((LON0 + LON1) / 2, (LAT0 + LAT1) / 2))
    finally:
        if server is not None:
            server.should_exit = True
        store.stop()
    print(f"\nfirst paint ({args.sites} sites, {args.detections} detections; 1280x800, headless chromium)")
    print(f"{'load':>4} {'FCP ms':>8} {'map idle ms':>12} {'zoom':>5} {'tiles':>6} {'tile kB':>8} {'total kB':>9}")
    for m in first:
        print(f"{m['load']:>4} {m['fcp'] or float('nan'):>8.0f} {m['idle']:>12.0f} {m['zoom']:>5.1f} {m['tiles']:>6} "
              f"{m['tile_bytes'] / 1024:>8.0f} {m['bytes'] / 1024:>9.0f}")
    print(f"median: FCP {statistics.median(m['fcp'] or 0 for m in first):.0f} ms, "
          f"map idle {statistics.median(m['idle'] for m in first):.0f} ms")
    print("\npan/zoom animations (1 s each): frame intervals from requestAnimationFrame")
    print(f"{'view':>5} {'move':>5} {'frames':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'>50ms':>6} "
          f"{'idle ms':>8}")
    for r in moves:
        print(f"{r['view']:>5} {r['kind']:>5} {r['frames']:>6} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['max']:>7.1f} "
              f"{r['over50']:>6} {r['idle']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
