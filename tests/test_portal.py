"""The geoportal in a real browser: the app under uvicorn on a real PostGIS where both demo scenes were ingested and
detected (the same use cases ``amberwatch track`` calls), driven by Playwright with Debian's chromium.

A small oblast/raion/hromada layer and a protected area around the demo scene (west of Potsdam, outside Ukraine)
are loaded with the use case ``amberwatch layers load`` uses, so the reports have an admin position.
Set AMBERWATCH_PORTAL_SCREENSHOTS=docs/img to refresh the screenshots in the documentation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import REPO, free_port
from PIL import Image
from publish_helpers import uvicorn_thread
from shapely.geometry import Point, box, mapping, shape

from amberwatch import portal
from amberwatch.settings import Settings
from amberwatch.store.db import Store

DEMO = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
pytestmark = pytest.mark.skipif(len(DEMO) < 2, reason="demo scenes not built (demo/S2_*amber_demo*.tif)")
OBLAST = "Бранденбург"  # the real Ukrainian name of the German state the demo scene lies in
RAION = "Потсдам-Міттельмарк"
HROMADA = "Вердер (Гафель)"
SHOTS = Path(os.environ.get("AMBERWATCH_PORTAL_SCREENSHOTS", "") or "")
RGB = {"new": (227, 26, 28), "active": (253, 141, 60), "abandoned": (150, 150, 150), "recovering": (65, 171, 93)}


def _geojson(path: Path, features: list[tuple[dict, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": mapping(g)} for p, g in features]}))
    return path


@pytest.fixture(scope="module")
def app_server(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from amberwatch.usecases import runs as pipeline
    from amberwatch.usecases import scenes as scenes_uc
    from amberwatch.usecases.monitoring import load_layer_files
    from amberwatch.web.app import create_app

    if not (portal.STATIC_DIR / "js" / "map.js").is_file():
        pytest.fail("the portal is not built: run `make portal` (npm ci + esbuild)")
    tmp = tmp_path_factory.mktemp("portal")
    port = free_port()
    places = _geojson(tmp / "places.geojson", [  # the fields of the State register of geographic names
        ({"Унормована назва": "Круглий Єльник", "Унормована назва латиницею": "Kruhlyi Yelnyk",
          "Вид географічного об'єкту": "урочище"}, Point(27.2253, 51.4808))])
    settings = Settings(data_dir=tmp / "data", database_url=make_database("amberwatch_portal"), port=port,
                        allowed_roots=[REPO / "demo"], places_paths=[places],
                        webhook_allow_private=True)  # the alerts panel subscribes a loopback receiver
    store = Store(settings).start()
    rows = sorted((scenes_uc.ingest(store, settings, p) for p in DEMO), key=lambda r: r.acquired)
    for row in rows:
        pipeline.detect(store, settings, row, None)
    from amberwatch.store.queries.portal import data_extent

    with store.session() as session:
        extent = data_extent(session)
    assert extent is not None, "the demo scenes gave no sites"
    x0, y0, x1, y1 = extent
    mid = (x0 + x1) / 2
    load_layer_files(store, "oblast", [_geojson(tmp / "oblasts.geojson", [
        ({"shapeName": OBLAST, "shapeISO": "DE-BB"}, box(x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5))])])
    load_layer_files(store, "raion", [_geojson(tmp / "raions.geojson", [
        ({"shapeName": RAION}, box(x0 - 0.2, y0 - 0.2, x1 + 0.2, y1 + 0.2))])])
    load_layer_files(store, "hromada", [_geojson(tmp / "hromadas.geojson", [
        ({"shapeName": HROMADA, "COD_3": "TEST01"}, box(x0 - 0.05, y0 - 0.05, mid, y1 + 0.05))])])
    load_layer_files(store, "protected_area", [_geojson(tmp / "protected.geojson", [
        ({"name_en": "Test wetland (fixture)", "category": "test"}, box(mid, y0 - 0.05, x1 + 0.05, y1 + 0.05))])],
        source="test-fixture")

    app = create_app(settings, store, worker=False)
    with uvicorn_thread(app, port, "/health", timeout=60) as base:
        yield {"base": base, "store": store, "extent": extent, "tmp": tmp, "settings": settings}
    store.stop()


def _shot_path(name: str, tmp: Path) -> Path:
    if SHOTS != Path(""):
        target = SHOTS if SHOTS.is_absolute() else REPO / SHOTS
        target.mkdir(parents=True, exist_ok=True)
        return target / name
    return tmp / name


def _colour_mask(png: Path, rgb: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    arr = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return (np.abs(arr - np.array(rgb)).max(axis=2) <= tol)


def _open_map(browser: Any, base: str, hash_: str = "", locale: str = "en-GB") -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale=locale)
    page.goto(f"{base}/{hash_}")
    page.wait_for_selector('#map[data-state="idle"]', timeout=30000)
    page.wait_for_timeout(300)
    if hash_.startswith("#"):  # colours are counted: the zoom buttons and scale bar are grey too
        page.add_style_tag(content=".maplibregl-control-container { display: none }")
    return page


def _centre_hash(extent: tuple[float, float, float, float], zoom: float, only_sites: bool = True) -> str:
    """A permalink to the middle of the sites; ``only_sites`` switches the reference layers off (their lines are
    grey and green too, like the abandoned and recovering sites)."""
    x0, y0, x1, y1 = extent
    off = "&off=detections,protected_areas,hromadas,raions,oblasts" if only_sites else ""
    return f"#map={zoom}/{(y0 + y1) / 2:.5f}/{(x0 + x1) / 2:.5f}{off}"


# -- the map -------------------------------------------------------------------------------------------------------

def test_map_draws_the_demo_sites_by_status_and_the_time_slider_changes_them(app_server: dict, browser: Any):
    page = _open_map(browser, app_server["base"], _centre_hash(app_server["extent"], 10.5))
    dates = json.loads(page.inner_text("#aw-config"))["dates"]
    assert dates == ["2017-02-16", "2018-03-10"]
    latest = app_server["tmp"] / "map-latest.png"
    page.locator("#map").screenshot(path=str(latest))
    now = {s: int(_colour_mask(latest, RGB[s]).sum()) for s in RGB}
    stats = httpx.get(app_server["base"] + "/api/stats?by=oblast").json()["total"]
    for status in RGB:  # every status that has sites is drawn in its colour, the others not at all
        assert (now[status] > 20) == (stats[status] > 0), (status, now, stats)

    page.focus("#time")
    page.keyboard.press("Home")  # the slider is keyboard operable: Home = the earliest date
    assert page.inner_text("#time-value") == "2017-02-16"
    page.wait_for_selector('#map[data-state="idle"]', timeout=30000)
    page.wait_for_timeout(300)
    earliest = app_server["tmp"] / "map-earliest.png"
    page.locator("#map").screenshot(path=str(earliest))
    then = {s: int(_colour_mask(earliest, RGB[s]).sum()) for s in RGB}
    # on the first date every site was new: no active ones, and fewer sites than today
    assert then["active"] == 0 and then["new"] > 20, then
    assert "at=2017-02-16" in page.url  # the permalink carries the date
    assert page.input_value("#permalink") == page.url

    page.keyboard.press("End")
    page.wait_for_selector('#map[data-state="idle"]', timeout=30000)
    page.wait_for_timeout(300)
    page.locator("#map").screenshot(path=str(latest))
    assert int(_colour_mask(latest, RGB["active"]).sum()) == now["active"]
    page.close()

    full = _open_map(browser, app_server["base"])  # no hash: the view fits the published sites
    full.screenshot(path=str(_shot_path("portal_map.png", app_server["tmp"])))
    full.close()


def test_permalink_restores_the_view_and_layers(app_server: dict, browser: Any):
    hash_ = _centre_hash(app_server["extent"], 11.6, only_sites=False) + "&at=2017-02-16&off=detections,raions"
    page = _open_map(browser, app_server["base"], hash_)
    assert page.inner_text("#time-value") == "2017-02-16"
    assert not page.is_checked('input[value="detections"]') and page.is_checked('input[value="mining_sites"]')
    zoom = page.evaluate("window.amberwatchMap.getZoom()")
    assert abs(zoom - 11.6) < 0.01
    page.close()


def test_search_finds_hromadas_sites_and_zooms(app_server: dict, browser: Any):
    base = app_server["base"]
    found = httpx.get(base + "/api/places", params={"q": "вердер"}).json()["results"]
    assert found and found[0]["kind"] == "hromada" and found[0]["name"] == HROMADA
    assert httpx.get(base + "/api/places", params={"q": "1"}).json()["results"][0]["kind"] == "site"
    assert httpx.get(base + "/api/places", params={"q": " "}).status_code == 400
    place = httpx.get(base + "/api/places", params={"q": "yelnyk"}).json()["results"]  # Latin spelling too
    assert [p["name"] for p in place] == ["Круглий Єльник"] and place[0]["kind"] == "place"
    assert httpx.get(base + "/api/places", params={"q": "x" * 300}).status_code in (400, 422)

    page = _open_map(browser, base)
    page.fill("#search-q", "Вердер")
    page.press("#search-q", "Enter")
    page.wait_for_selector("#search-results button")
    before = page.evaluate("window.amberwatchMap.getCenter().toArray()")
    page.click("#search-results button")
    page.wait_for_function(f"window.amberwatchMap.getCenter().toArray()[0] !== {before[0]}")
    page.close()


def test_clicking_a_site_opens_its_page_with_chips_and_chart(app_server: dict, browser: Any):
    from scipy import ndimage

    page = _open_map(browser, app_server["base"], _centre_hash(app_server["extent"], 10.5))
    shot = app_server["tmp"] / "map-click.png"
    page.locator("#map").screenshot(path=str(shot))
    labels, n = ndimage.label(_colour_mask(shot, RGB["active"]) | _colour_mask(shot, RGB["new"]))
    assert n > 0
    sizes = ndimage.sum(np.ones_like(labels), labels, range(1, n + 1))
    cy, cx = ndimage.center_of_mass(labels == int(np.argmax(sizes)) + 1)
    page.locator("#map").click(position={"x": float(cx), "y": float(cy)})
    link = page.wait_for_selector(".maplibregl-popup a.open", timeout=10000)
    site_id = int(re.search(r"/sites/(\d+)$", link.get_attribute("href")).group(1))
    link.click()
    page.wait_for_url(f"**/sites/{site_id}")
    page.wait_for_selector("#area-chart[data-ready='2']", timeout=10000)
    for which in ("before", "after"):
        page.wait_for_function(f"document.getElementById('chip-{which}').complete")
        assert page.evaluate(f"document.getElementById('chip-{which}').naturalWidth") == 320
    site = httpx.get(f"{app_server['base']}/api/sites/{site_id}").json()["properties"]
    assert page.get_attribute("#status", "data-status") == site["status"]
    assert page.inner_text("#oblast") == site["oblast"] == OBLAST
    page.screenshot(path=str(_shot_path("portal_site.png", app_server["tmp"])), full_page=True)
    page.close()


def test_ukrainian_labels(app_server: dict, browser: Any):
    uk, en = portal.catalog("uk"), portal.catalog("en")
    page = _open_map(browser, app_server["base"], "?lang=uk")
    assert page.get_attribute("html", "lang") == "uk"
    legend = page.inner_text("#legend-status")
    assert uk["status.new"] in legend and uk["status.active"] in legend and en["status.new"] not in legend
    assert uk["nav.map"] in page.inner_text("header")
    page.goto(app_server["base"] + "/stats")  # the choice is remembered
    assert page.get_attribute("html", "lang") == "uk"
    page.close()
    # a Ukrainian browser gets Ukrainian, others English, and ?lang= overrides both
    ctx = browser.new_context(locale="uk-UA")
    p2 = ctx.new_page()
    p2.goto(app_server["base"] + "/stats")
    assert p2.get_attribute("html", "lang") == "uk" and uk["stats.title"] in p2.inner_text("h1")
    p2.goto(app_server["base"] + "/stats?lang=en")
    assert en["stats.title"] in p2.inner_text("h1")
    ctx.close()
    assert httpx.get(app_server["base"] + "/", headers={"Accept-Language": "de-DE,de;q=0.9"}).headers[
        "content-language"] == "en"
    assert httpx.get(app_server["base"] + "/", headers={"Accept-Language": "ru,uk;q=0.8,en;q=0.5"}).headers[
        "content-language"] == "uk"
    assert httpx.get(app_server["base"] + "/?lang=xx").status_code == 400


def test_basemap_setting_adds_a_raster_layer_below_the_data(app_server: dict):
    from amberwatch.usecases.portal import map_config

    plain = map_config(app_server["store"], app_server["settings"])
    assert plain["basemap_url"] is None
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    custom = app_server["settings"].model_copy(update={"basemap_url": url, "basemap_attribution": "© Example"})
    config = map_config(app_server["store"], custom)
    assert config["basemap_url"] == url and config["basemap_attribution"] == "© Example"
    html = portal.render("map.html", "en", config={**config, "worker_url": "/w.mjs"}, static_url=lambda n: n,
                         path="/", other_lang="uk", other_lang_url="/?lang=uk")
    assert 'value="basemap"' in html and url in html
    js = (portal.HERE / "js" / "map.js").read_text()
    assert 'layers.push({ id: "basemap", type: "raster"' in js  # pushed right after the background layer


def test_catalogs_hold_every_text_the_pages_use():
    uk, en = portal.catalog("uk"), portal.catalog("en")
    assert set(uk) == set(en)
    assert all(uk[k].strip() and en[k].strip() for k in en)
    used: set[str] = set()
    for path in [*portal.TEMPLATES_DIR.glob("*.html"), *(portal.HERE / "js").glob("*.js")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", path.read_text()))
    dynamic = {k for k in used if k.endswith((".", "_"))}  # a prefix completed in the template
    missing = {k for k in used - dynamic if k not in en}
    assert not missing, missing
    for prefix in ("status.", "site.status.", "kind.", "stats.by.", "map.layer.", "site.chip.", "site.download."):
        assert any(k.startswith(prefix) for k in en), prefix


# -- the site's files and reports ------------------------------------------------------------------------------------

def _site_in_oblast(base: str) -> dict:
    sites = httpx.get(base + "/api/sites", params={"oblast": OBLAST, "limit": 1}).json()["features"]
    assert sites, "no site in the test oblast"
    return httpx.get(f"{base}/api/sites/{sites[0]['id']}").json()


def _pdftotext(pdf: bytes, tmp: Path, name: str, layout: bool = False) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (apt-get install poppler-utils)")
    path = tmp / name
    path.write_bytes(pdf)
    args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def test_evidence_report_pdf_has_site_coordinates_and_oblast(app_server: dict):
    base, tmp = app_server["base"], app_server["tmp"]
    site = _site_in_oblast(base)
    sid = site["id"]
    c = shape(site["geometry"]).centroid
    for lang in ("uk", "en"):
        r = httpx.get(f"{base}/api/sites/{sid}/report.pdf", params={"lang": lang}, timeout=120)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF")
        text = _pdftotext(r.content, tmp, f"report-{lang}.pdf")
        flat = " ".join(text.split())
        assert portal.translator(lang)("report.title", id=sid) in flat
        assert f"{c.y:.6f}, {c.x:.6f}" in flat  # WGS 84 centroid
        assert OBLAST in flat and RAION in flat
        assert re.search(r"AW-S\d+-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}", flat)
        assert "s2-unet" in flat and "S2A_L1C_T33UUU_20170216T102101" in flat
        ids = re.findall(r"AW-S\d+-[0-9A-F-]{14}", flat)
    again = _pdftotext(httpx.get(f"{base}/api/sites/{sid}/report.pdf", timeout=120).content, tmp, "again.pdf")
    assert ids[0] in " ".join(again.split())  # the document ID is stable
    html = httpx.get(f"{base}/api/sites/{sid}/report.html", params={"lang": "en"})
    assert html.status_code == 200 and ids[0] in html.text
    assert httpx.get(f"{base}/api/sites/999999/report.pdf").status_code == 404
    if shutil.which("pdftoppm"):
        out = _shot_path("portal_report.png", tmp)
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile", str(tmp / "report-uk.pdf"),
                        str(out.with_suffix(""))], check=True)
        assert out.exists()


def test_area_report_totals_equal_api_stats(app_server: dict, browser: Any):
    base, tmp = app_server["base"], app_server["tmp"]
    for unit in ("oblast", "raion", "year"):
        stats = httpx.get(base + "/api/stats", params={"by": unit}).json()
        r = httpx.get(base + "/api/reports/area.pdf", params={"unit": unit, "lang": "en"}, timeout=120)
        assert r.status_code == 200
        text = _pdftotext(r.content, tmp, f"area-{unit}.pdf", layout=True)
        total = next(line for line in text.splitlines() if line.strip().startswith("Total"))
        numbers = [n.replace("\u202f", "") for n in re.findall(r"\d[\d\u202f]*(?:\.\d+)?", total)]
        expected = f"{stats['total']['disturbed_area_ha']:.2f}"
        assert expected in numbers, (unit, total, expected)
        if unit != "year":
            assert str(stats["total"]["sites"]) == numbers[0]
            # without a period the period column is the same area (the years add up to the cumulative footprint)
            assert abs(float(numbers[-1]) - stats["total"]["disturbed_area_ha"]) < 0.011
        page = browser.new_page(locale="en-GB")
        page.goto(f"{base}/stats?by={unit}")
        assert page.inner_text("#total-area").replace("\u202f", "") == expected
        page.wait_for_selector("#chart-area[data-ready='1']", timeout=10000)
        page.wait_for_selector("#chart-years[data-ready='1']", timeout=10000)
        assert page.get_attribute("#csv", "href") == f"/api/stats?by={unit}&format=csv"
        page.close()
    one = httpx.get(base + "/api/reports/area.html", params={"unit": "year", "from": "2018", "to": "2018"})
    assert one.status_code == 200 and "2017</td>" not in one.text and "2018</td>" in one.text
    for bad in ({"unit": "planet"}, {"from": "17"}, {"from": "2019", "to": "2017"}):
        assert httpx.get(base + "/api/reports/area.pdf", params=bad).status_code == 400, bad


def test_site_downloads_and_chips(app_server: dict):
    import pyogrio

    base, tmp = app_server["base"], app_server["tmp"]
    sid = _site_in_oblast(base)["id"]
    for fmt in ("geojson", "gpkg", "kml"):
        r = httpx.get(f"{base}/api/sites/{sid}.{fmt}")
        assert r.status_code == 200, (fmt, r.text)
        path = tmp / f"site.{fmt}"
        path.write_bytes(r.content)
        df = pyogrio.read_dataframe(path) if _has_geopandas() else None
        info = pyogrio.read_info(path)
        assert info["features"] == 1 and info["crs"] in ("EPSG:4326", None), info
        if df is not None and fmt != "kml":
            assert int(df["site_id"][0]) == sid
    shp = httpx.get(f"{base}/api/sites/{sid}.shp")
    assert shp.status_code == 400 and "geojson, gpkg, kml" in shp.json()["detail"]
    assert httpx.get(f"{base}/api/sites/99999999.geojson").status_code == 404
    for which in ("before", "after"):
        r = httpx.get(f"{base}/api/sites/{sid}/chips/{which}.png", timeout=60)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = np.asarray(Image.open(__import__("io").BytesIO(r.content)).convert("RGB"))
        assert img.shape == (320, 320, 3) and img.std() > 5
        assert ((img[..., 0] > 240) & (img[..., 1] > 200) & (img[..., 2] < 60)).sum() > 20  # the yellow outline
    assert httpx.get(f"{base}/api/sites/{sid}/chips/sideways.png").status_code == 404
    assert httpx.get(f"{base}/sites/99999").status_code == 404


def _has_geopandas() -> bool:
    try:
        import geopandas  # noqa: F401
    except ImportError:
        return False
    return True


# -- tiles and static files -------------------------------------------------------------------------------------------

def test_vector_tiles(app_server: dict):
    import morecantile

    base, tmp = app_server["base"], app_server["tmp"]
    x0, y0, x1, y1 = app_server["extent"]
    t = morecantile.tms.get("WebMercatorQuad").tile((x0 + x1) / 2, (y0 + y1) / 2, 10)
    r = httpx.get(f"{base}/tiles/mining_sites/10/{t.x}/{t.y}.pbf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert httpx.get(f"{base}/tiles/mining_sites/10/{t.x}/{t.y}.pbf",
                     headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    path = tmp / "tile.pbf"
    path.write_bytes(r.content)
    info = subprocess.run(["ogrinfo", "-ro", "-al", "-so", f"MVT:{path}"], capture_output=True, text=True)
    assert "mining_sites" in info.stdout and "site_points" in info.stdout, info.stdout + info.stderr
    early = httpx.get(f"{base}/tiles/mining_sites/10/{t.x}/{t.y}.pbf", params={"at": "2017-02-16"})
    assert early.status_code == 200 and early.content != r.content
    assert httpx.get(f"{base}/tiles/mining_sites/10/{t.x}/{t.y}.pbf", params={"at": "2000-01-01"}).status_code == 204
    assert httpx.get(f"{base}/tiles/detections/10/{t.x}/{t.y}.pbf").status_code == 200
    assert httpx.get(f"{base}/tiles/oblasts/5/{t.x >> 5}/{t.y >> 5}.pbf").status_code == 200
    for url, status in (("/tiles/mining_sites/23/0/0.pbf", 400), ("/tiles/mining_sites/3/8/0.pbf", 400),
                        ("/tiles/mining_sites/3/-1/0.pbf", 400), ("/tiles/mining_sites/a/0/0.pbf", 400),
                        ("/tiles/mining_sites/1/0/0.pbf?at=yesterday", 400), ("/tiles/passwords/1/0/0.pbf", 404),
                        ("/tiles/mining_sites/1/0/99999999999999.pbf", 400), ("/tiles/detections/5/0/0.pbf", 400)):
        assert httpx.get(base + url).status_code == status, url


def test_static_files_are_versioned_cached_compressed_and_the_map_page_is_small(app_server: dict):
    base = app_server["base"]
    html = httpx.get(base + "/", headers={"Accept-Encoding": "gzip"})
    assets = re.findall(r'(?:href|src)="(/portal/static/[^"]+)"', html.text)
    config = json.loads(re.search(r'<script id="aw-config" type="application/json">(.*?)</script>', html.text,
                                  re.S).group(1))
    assets.append(config["worker_url"])
    assert len(assets) == 4, assets  # portal.css, map.css, map.js, the map's worker
    total = html.num_bytes_downloaded
    for url in assets:
        r = httpx.get(base + url, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable" and r.headers["etag"]
        assert httpx.get(base + url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        total += r.num_bytes_downloaded
    assert total < 1_000_000, f"the map page weighs {total} bytes compressed"
    unversioned = httpx.get(base + "/portal/static/css/portal.css")
    assert unversioned.headers["cache-control"] == "public, max-age=300"
    assert httpx.get(base + "/portal/static/../../settings.py").status_code == 404
    assert httpx.get(base + "/portal/static/%2e%2e/__init__.py").status_code == 404


# -- accessibility -----------------------------------------------------------------------------------------------
AXE = portal.HERE / "node_modules" / "axe-core" / "axe.min.js"


def _axe(page: Any) -> list[dict]:
    """axe-core (npm, from the portal's node_modules: no CDN) on the page: its serious and critical violations."""
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `make portal` (npm ci in service/amberwatch/portal)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"],
                                           runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a",
                                                                             "wcag21aa", "best-practice"]}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def _first_site(app_server: dict) -> int:
    return int(httpx.get(app_server["base"] + "/api/sites", params={"limit": 1}).json()["features"][0]["id"])


@pytest.mark.parametrize("lang", ["en-GB", "uk-UA"])
def test_axe_no_serious_or_critical_violations(app_server: dict, browser: Any, lang: str):
    base = app_server["base"]
    pages = {"/": '#map[data-state="idle"]', f"/sites/{_first_site(app_server)}": "#status",
             "/stats": "#stats-table", "/stats?by=hromada": "#stats-table", "/validate/": "#key"}
    found = {}
    for path, ready in pages.items():
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale=lang)
        page.goto(base + path)
        page.wait_for_selector(ready, timeout=30000)
        page.wait_for_timeout(300)
        found[path] = _axe(page)
        page.close()
    assert found == {p: [] for p in pages}, json.dumps(found, indent=1, ensure_ascii=False)


def test_keyboard_navigation(app_server: dict, browser: Any):
    """Tab order starts with the skip link (which moves focus to the content), then the header links; the search,
    slider and layer switches work from the keyboard, and focus is visible."""
    page = _open_map(browser, app_server["base"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle + "
                            "getComputedStyle(document.activeElement).boxShadow")
    assert outline not in ("nonenone", "none"), outline
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.getAttribute('href')"))
    assert order[:6] == ["/", "/", "/stats", "/report", "/docs", "/ogcapi"], order
    assert "search-q" in order, order
    page.focus("#search-q")
    page.keyboard.type(HROMADA[:6])
    page.keyboard.press("Enter")
    page.wait_for_selector("#search-results li", timeout=10000)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.focus('input[value="detections"]')
    page.keyboard.press("Space")  # a layer switch toggles from the keyboard
    assert not page.is_checked('input[value="detections"]')
    page.close()


# -- alerts for this area ------------------------------------------------------------------------------------------

@pytest.fixture()
def receiver() -> Iterator[str]:
    """A webhook receiver on loopback (reachable because the app runs with webhook_allow_private)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_alerts_panel_subscribes_a_unit_and_the_map_view_from_the_keyboard(app_server: dict, browser: Any,
                                                                            receiver: str):
    base = app_server["base"]
    page = _open_map(browser, base)
    assert page.is_hidden("#alerts-panel")
    page.focus("#alerts-toggle")
    page.keyboard.press("Enter")  # a disclosure button: opens the panel and moves focus into it
    assert page.get_attribute("#alerts-toggle", "aria-expanded") == "true" and page.is_visible("#alerts-panel")
    assert page.evaluate("document.activeElement.name") == "alerts-area"
    assert page.is_visible("#alerts-unit-q") and page.is_hidden("#alerts-view-box")
    assert _axe(page) == [], "the open panel"

    page.focus("#alerts-unit-q")  # an admin unit, found by /api/places
    page.keyboard.type(HROMADA[:6])
    page.keyboard.press("Enter")
    page.wait_for_selector("#alerts-unit:not([disabled])", timeout=10000)
    assert HROMADA in page.inner_text("#alerts-unit")
    page.select_option("#alerts-unit", label=f"{HROMADA} (hromada)")
    page.fill("#alerts-url", receiver)
    page.click("#alerts-submit")
    page.wait_for_selector("#alerts-result:not([hidden])", timeout=15000)
    assert page.evaluate("document.activeElement.id") == "alerts-done-h"
    sid = page.inner_text("#alerts-id")
    assert page.input_value("#alerts-secret").startswith("whsec_")
    assert page.input_value("#alerts-token").startswith("unsub_")
    assert page.get_attribute("#alerts-feed", "href") == f"{base}/api/subscriptions/{sid}/events.atom"
    assert "X-AmberWatch-Signature" in page.inner_text("#alerts-verify")
    assert page.get_attribute('a[href^="/docs#/alerts"]', "href")
    info = httpx.get(f"{base}/api/subscriptions/{sid}").json()
    assert (info["area_kind"], info["area_name"], info["statuses"]) == ("hromada", HROMADA, None), info
    assert httpx.get(f"{base}/api/subscriptions/{sid}/events.atom").status_code == 200
    page.click('button[data-copy="alerts-secret"]')
    page.wait_for_function("document.getElementById('alerts-copied').textContent === 'Copied'", timeout=5000)
    assert _axe(page) == [], "the panel with the result"

    page.click("#alerts-again")  # the current map view: its bounds as a polygon, drawn on the map
    assert page.input_value("#alerts-secret") == ""
    page.check('input[name="alerts-area"][value="view"]')
    assert page.is_visible("#alerts-view-box") and "ha" in page.inner_text("#alerts-view-info")
    bounds = page.evaluate("(() => { const b = window.amberwatchMap.getBounds();"
                           " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()")
    page.uncheck('input[name="alerts-status"][value="recovering"]')
    page.fill("#alerts-url", receiver)
    page.evaluate("window.amberwatchMap.zoomOut({animate: false})")  # the drawn rectangle stays where it was
    page.wait_for_selector('#map[data-state="idle"]', timeout=30000)
    page.screenshot(path=str(app_server["tmp"] / "alerts-form.png"))
    page.click("#alerts-submit")
    page.wait_for_selector("#alerts-result:not([hidden])", timeout=15000)
    info = httpx.get(f"{base}/api/subscriptions/{page.inner_text('#alerts-id')}").json()
    assert info["area_kind"] == "polygon" and info["statuses"] == ["new", "active", "abandoned"], info
    got = shape(info["area"]).bounds
    assert np.allclose(got, bounds, atol=1e-4), (got, bounds)
    page.wait_for_timeout(300)
    page.screenshot(path=str(_shot_path("portal_alerts.png", app_server["tmp"])))
    assert page.evaluate("window.amberwatchMap.getSource('alerts-area').getData()"
                         ".then((d) => d.features.length)") == 1
    page.keyboard.press("Escape")  # closes the panel and removes the rectangle
    assert page.is_hidden("#alerts-panel") and page.evaluate("document.activeElement.id") == "alerts-toggle"
    assert page.evaluate("window.amberwatchMap.getSource('alerts-area').getData()"
                         ".then((d) => d.features.length)") == 0
    page.close()

    uk = browser.new_page(viewport={"width": 1280, "height": 800}, locale="uk-UA")
    uk.goto(base + "/")
    uk.wait_for_selector('#map[data-state="idle"]', timeout=30000)
    uk.click("#alerts-toggle")
    assert "Сповіщення" in uk.inner_text("#alerts-h") and "URL вебхука" in uk.inner_text("#alerts-panel")
    assert _axe(uk) == [], "the open panel in Ukrainian"
    uk.close()


# -- people in the loop on the map: approved crowd reports, validation status of sites --------------------------------

def _tile_features(base: str, layer: str, lon: float, lat: float, z: int, tmp: Path) -> list[dict[str, str]]:
    """The features of one vector tile as GDAL's MVT driver reads them: a dict of attribute name to text each."""
    import morecantile

    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    r = httpx.get(f"{base}/tiles/{layer}/{z}/{t.x}/{t.y}.pbf")
    if r.status_code == 204:
        return []
    assert r.status_code == 200, r.text
    path = tmp / f"{layer}-{z}-{t.x}-{t.y}.pbf"
    path.write_bytes(r.content)
    info = subprocess.run(["ogrinfo", "-ro", "-al", "-q", f"MVT:{path}", layer], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    features: list[dict[str, str]] = []
    for line in info.stdout.splitlines():
        if line.startswith("OGRFeature("):
            features.append({})
        elif features and (m := re.match(r"\s+(\w+) \([^=]*\) = (.*)$", line)):
            features[-1][m.group(1)] = m.group(2)
    return features


def _click_centre(page: Any) -> None:
    box = page.locator("#map").bounding_box()
    page.locator("#map").click(position={"x": box["width"] / 2, "y": box["height"] / 2})


def test_map_shows_approved_reports_and_the_validation_status_of_sites(app_server: dict, browser: Any):
    import io

    from amberwatch.usecases import keys as keys_uc
    from amberwatch.usecases import validation as validation_uc
    from amberwatch.validation.items import NewItem

    base, store, settings, tmp = app_server["base"], app_server["store"], app_server["settings"], app_server["tmp"]
    x0, y0, x1, y1 = app_server["extent"]
    lon, lat = x0 - 0.01, y0 - 0.01  # beside the sites, inside the oblast
    jpeg = io.BytesIO()
    Image.new("RGB", (120, 80), (40, 160, 60)).save(jpeg, "JPEG")
    contact = "secret-phone-0501234567"
    sent = httpx.post(base + "/api/reports", timeout=60, files=[("files", ("pits.jpg", jpeg.getvalue(), "image/jpeg"))],
                      data={"lon": str(lon), "lat": str(lat), "text": "Fresh pits and a pump by the forest road",
                            "observed_at": "2026-05-01T10:00:00+03:00", "contact": contact})
    assert sent.status_code == 201, sent.text
    report = sent.json()["id"]
    assert _tile_features(base, "reports", lon, lat, 14, tmp) == []  # pending: not on the map

    keys = {role: keys_uc.create_key(store, f"map-{role}", role)[1] for role in ("moderator", "analyst", "validator")}
    ok = httpx.post(f"{base}/api/reports/{report}/moderation", json={"decision": "approve"}, timeout=60,
                    headers={"Authorization": f"Bearer {keys['moderator']}"})
    assert ok.status_code == 200, ok.text
    tile = httpx.get(f"{base}/tiles/reports/14/0/0.pbf")  # nothing there
    assert tile.status_code == 204
    (feature,) = _tile_features(base, "reports", lon, lat, 14, tmp)
    media = httpx.get(f"{base}/api/reports/{report}").json()["media"]
    assert feature["report_id"] == str(report) and feature["text"] == "Fresh pits and a pump by the forest road"
    assert feature["observed_at"] == "2026-05-01" and feature["photo_url"] == media[0]["url"]
    assert set(feature) == {"report_id", "text", "observed_at", "reported_at", "photo_url", "n_media"}  # public only
    import morecantile

    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
    assert contact.encode() not in httpx.get(f"{base}/tiles/reports/14/{t.x}/{t.y}.pbf").content

    # two sites: one checked in the field (active: confirmed), one waiting for volunteer votes
    sites = httpx.get(base + "/api/sites", params={"limit": 2}).json()["features"]
    checked, waiting = (int(f["id"]) for f in sites)
    point = {int(f["id"]): shape(f["geometry"]).representative_point() for f in sites}
    items = validation_uc.add_items(store, settings, [NewItem("site", "new_site", site_id=checked),
                                                      NewItem("site", "new_site", site_id=waiting)])
    vote = httpx.post(f"{base}/api/validation/items/{items[1]}/votes", json={"answer": "mining"}, timeout=60,
                      headers={"Authorization": f"Bearer {keys['validator']}"})  # one vote of three
    assert vote.status_code == 201, vote.text
    res = httpx.post(base + "/api/field-checks", headers={"Authorization": f"Bearer {keys['analyst']}"}, timeout=60,
                     data={"id": "6f1c1c9e-5b43-4a37-9a43-0e2f0b5c7d10", "site_id": str(checked),
                           "checked_on": "2026-06-01", "observer": "Field team", "state": "active", "disturbance": "4",
                           "lon": str(point[checked].x), "lat": str(point[checked].y)})
    assert res.status_code == 201, res.text
    expected = {}
    for sid in (checked, waiting):
        v = httpx.get(f"{base}/api/validation/sites/{sid}").json()
        expected[sid] = (v["status"], v["field_checked"])
    assert expected == {checked: ("confirmed", True), waiting: ("pending", False)}, expected
    for sid in (checked, waiting):
        layer_features = _tile_features(base, "mining_sites", point[sid].x, point[sid].y, 12, tmp)
        props = [f for f in layer_features if f.get("site_id") == str(sid)]
        assert props, (sid, layer_features)
        assert {(p["validation_status"], p["field_checked"]) for p in props} == {
            (expected[sid][0], "1" if expected[sid][1] else "0")}, props

    # the browser: the report's popup with its photo, through the layer list; the site popups with their status
    page = _open_map(browser, base, f"#map=14/{lat:.5f}/{lon:.5f}")
    assert page.is_checked('input[value="reports"]')
    _click_centre(page)
    popup = page.wait_for_selector(".maplibregl-popup .report-popup", timeout=10000)
    assert f"Report {report}" in popup.inner_text() and "Fresh pits and a pump" in popup.inner_text()
    assert "Seen: 2026-05-01" in popup.inner_text()
    page.wait_for_function("document.querySelector('.report-popup img').complete", timeout=10000)
    assert page.evaluate("document.querySelector('.report-popup img').naturalWidth") == 120
    assert page.get_attribute(".report-popup img", "alt") == "Photo sent with the report"
    assert _axe(page) == [], "the map with a report popup"
    page.click(".maplibregl-popup-close-button")
    page.uncheck('input[value="reports"]')  # switched off: no longer drawn, no popup, and the permalink says so
    assert page.evaluate("window.amberwatchMap.getLayoutProperty('report-points', 'visibility')") == "none"
    assert "off=reports" in page.url
    _click_centre(page)
    page.wait_for_timeout(500)
    assert page.query_selector(".report-popup") is None
    page.close()

    labels = {"en-GB": ("Confirmed as mining", "checked in the field", "Validation in progress"),
              "uk-UA": ("Підтверджено: видобуток", "перевірено на місці", "Перевіряється")}
    for locale, (confirmed, field, pending) in labels.items():
        for sid in (checked, waiting):
            page = _open_map(browser, base, f"#map=16/{point[sid].y:.6f}/{point[sid].x:.6f}&off=reports",
                             locale=locale)
            _click_centre(page)
            box = page.wait_for_selector(".maplibregl-popup .validation", timeout=10000)
            assert box.get_attribute("data-validation") == expected[sid][0]
            text = box.inner_text()
            if sid == checked:
                assert confirmed in text and field in text, text
            else:
                assert pending in text and field not in text, text
            page.close()
