"""Crowd reports through the real served app (uvicorn, PostGIS, MapServer for /ows, pygeoapi for /ogcapi, ffmpeg):
photos stripped of camera tags with GPS kept only by consent, pending reports absent from every public answer,
moderation, the public ``reports`` layer read by OWSLib and GDAL, the nearby site page, hostile files refused with
nothing stored, duplicates, the honeypot, the upload cap, the rate limit, the retention purge (CLI), and the form
and moderation queue in a real browser at a phone's viewport."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from publish_helpers import OGRINFO, app_settings, publish_polygons, uvicorn_thread
from shapely.geometry import box
from sqlalchemy import text

from amberwatch import portal
from amberwatch.settings import Settings
from amberwatch.store.db import Store

SITE = box(27.2000, 51.4000, 27.2030, 51.4020)  # a site in Rivne oblast
NEAR = (27.2015, 51.4012)  # inside it
FAR = (27.3500, 51.4900)  # about 12 km away
MAKE, MODEL, GPS = 0x010F, 0x0110, 0x8825


def _dms(value: float) -> tuple[float, float, float]:
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round(((value - d) * 60 - m) * 60, 4)


def photo(colour: tuple[int, int, int], gps: tuple[float, float] | None = None, fmt: str = "JPEG") -> bytes:
    """A small photo with camera tags (Make, Model) and, with ``gps`` (lon, lat), an EXIF GPS position."""
    img = Image.new("RGB", (96, 64), colour)
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = "TestCam", "X100 Secret Serial 12345"
    if gps:
        exif[GPS] = {1: "N", 2: _dms(gps[1]), 3: "E", 4: _dms(gps[0])}
    out = io.BytesIO()
    img.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A valid side x side 1-bit PNG of zeros: about 50 MB of pixels inflating from a few tens of KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + side // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def video(tmp: Path, seconds: float, name: str) -> bytes:
    path = tmp / name
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate=10:duration={seconds}", "-c:v", "mpeg4",
                    "-metadata", "location=+51.4012+027.2015/", "-metadata", "title=secret", str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


@pytest.fixture(scope="module")
def app(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from amberwatch.usecases import keys as keys_uc
    from amberwatch.web.app import create_app

    if not (portal.STATIC_DIR / "js" / "report.js").is_file():
        pytest.fail("the portal is not built: run `make portal` (npm ci + esbuild)")
    tmp = tmp_path_factory.mktemp("crowd")
    settings = app_settings(make_database("amberwatch_crowd"), tmp / "data", report_max_upload_mb=5,
                            report_max_image_mb=2, report_max_video_mb=2, report_max_video_s=2.0,
                            report_max_image_pixels=20_000_000, rate_limit_reports="30/minute",
                            rate_limit_writes="1000/minute")
    store = Store(settings).start()
    publish_polygons(store, settings, "crowd-test-scene", datetime(2026, 5, 1, 9, 30, tzinfo=UTC),
                     box(27.0, 51.3, 27.5, 51.6), [SITE])
    with store.session() as s:
        site_id = s.execute(text("select id from sites order by id desc limit 1")).scalar_one()
    _, key = keys_uc.create_key(store, "moderator-test", "moderator")
    _, analyst = keys_uc.create_key(store, "analyst-test", "analyst")
    app_ = create_app(settings, store, worker=False)
    with uvicorn_thread(app_, settings.port, "/health", timeout=60) as base:
        yield {"base": base, "store": store, "settings": settings, "site_id": site_id, "tmp": tmp,
               "mod": {"Authorization": f"Bearer {key}"}, "analyst": {"Authorization": f"Bearer {analyst}"},
               "ids": {}}
    store.stop()


def post(app: dict, files: list[tuple[str, bytes, str]], **fields: Any) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    return httpx.post(app["base"] + "/api/reports", data=data, timeout=60,
                      files=[("files", (name, content, ctype)) for name, content, ctype in files])


def stored(app: dict) -> tuple[int, int, list[str], list[str]]:
    """Report rows, media rows, stored files, staging leftovers."""
    with app["store"].session() as s:
        reports, media = s.execute(text(
            "select (select count(*) from crowd_reports), (select count(*) from crowd_report_media)")).one()
    root = app["settings"].data_dir.resolve() / "crowd"
    files = sorted(p.name for p in (root / "media").glob("*")) if (root / "media").exists() else []
    staging = sorted(p.name for p in (root / "staging").glob("*")) if (root / "staging").exists() else []
    return int(reports), int(media), files, staging


def exif_of(content: bytes) -> tuple[str, dict[int, Any], dict[int, Any]]:
    img = Image.open(io.BytesIO(content))
    exif = img.getexif()
    return img.format or "", dict(exif), dict(exif.get_ifd(GPS))


def ogc_items(app: dict) -> dict[int, dict]:
    from owslib.ogcapi.features import Features

    items = Features(app["base"] + "/ogcapi").collection_items("reports", limit=100)
    return {int(f["id"]): f["properties"] for f in items["features"]}


def wfs_features(app: dict) -> list[dict]:
    from owslib.wfs import WebFeatureService

    wfs = WebFeatureService(app["base"] + "/ows", version="2.0.0")
    assert "reports" in {name.split(":")[-1] for name in wfs.contents}
    body = wfs.getfeature(typename=["reports"], outputFormat="geojson").read()
    return json.loads(body)["features"]


# -- a report, its photo, consent to keep GPS -----------------------------------------------------------
def test_photo_is_stripped_and_gps_kept_only_with_consent(app: dict) -> None:
    before = stored(app)
    # no lon/lat: the position comes from the photo's EXIF; no consent: the stored photo has no GPS
    a = post(app, [("IMG_0001.JPG", photo((200, 120, 40), gps=NEAR), "image/jpeg")],
             text="Fresh pits and a motor pump by the forest road", contact="reporter@example.org",
             share_location="false")
    assert a.status_code == 201, a.text
    body = a.json()
    assert body["status"] == "pending" and body["location_source"] == "exif" and not body["duplicate"]
    assert body["lon"] == pytest.approx(NEAR[0], abs=1e-4) and body["lat"] == pytest.approx(NEAR[1], abs=1e-4)
    assert "contact" not in a.text and "example.org" not in a.text
    app["ids"]["a"] = body["id"]

    # consent, position from a map click: the stored photo keeps only the GPS position
    b = post(app, [("IMG_0002.png", photo((30, 160, 90), gps=FAR, fmt="PNG"), "image/png")],
             text="Sand spoil heaps in the clearing", lon=FAR[0], lat=FAR[1], share_location="true",
             location_source="map", contact="+380 00 000 0000")
    assert b.status_code == 201, b.text
    assert b.json()["location_source"] == "map" and b.json()["media"][0]["gps_kept"] is True
    app["ids"]["b"] = b.json()["id"]
    after = stored(app)
    assert after[:2] == (before[0] + 2, before[1] + 2) and len(after[2]) == len(before[2]) + 2 and not after[3]

    for rid, keeps_gps in ((app["ids"]["a"], False), (app["ids"]["b"], True)):
        report = httpx.get(f"{app['base']}/api/reports/{rid}", headers=app["mod"]).json()
        media = httpx.get(app["base"] + report["media"][0]["url"], headers=app["mod"])
        assert media.status_code == 200 and media.headers["content-type"] == "image/jpeg"
        assert media.headers["x-content-type-options"] == "nosniff"
        fmt, tags, gps = exif_of(media.content)
        assert fmt == "JPEG"  # re-encoded (the PNG too)
        assert MAKE not in tags and MODEL not in tags and b"TestCam" not in media.content
        if keeps_gps:
            assert gps[2] == pytest.approx(_dms(FAR[1])) and gps[4] == pytest.approx(_dms(FAR[0]))
            assert set(tags) == {GPS}
        else:
            assert gps == {} and tags == {}


def test_pending_reports_are_not_public(app: dict) -> None:
    rid = app["ids"]["a"]
    assert httpx.get(f"{app['base']}/api/reports/{rid}").status_code == 404
    media_url = httpx.get(f"{app['base']}/api/reports/{rid}", headers=app["mod"]).json()["media"][0]["url"]
    assert httpx.get(app["base"] + media_url, headers=app["mod"]).status_code == 200
    assert httpx.get(app["base"] + media_url).status_code == 404  # pending: not even its photo
    assert httpx.get(f"{app['base']}/api/reports?status=pending").status_code == 401
    assert httpx.get(f"{app['base']}/api/reports?status=pending", headers=app["analyst"]).status_code == 403
    assert rid not in {r["id"] for r in httpx.get(f"{app['base']}/api/reports").json()}
    assert rid not in ogc_items(app)
    assert all(int(str(f.get("id", "")).split(".")[-1] or 0) != rid for f in wfs_features(app))
    site = httpx.get(f"{app['base']}/sites/{app['site_id']}?lang=en").text
    assert "Fresh pits and a motor pump" not in site
    queue = httpx.get(f"{app['base']}/api/reports?status=pending", headers=app["mod"]).json()
    assert [r["id"] for r in queue][:2] == [app["ids"]["a"], app["ids"]["b"]]
    assert queue[0]["contact"] == "reporter@example.org"  # moderators may reach the reporter
    assert "client_ip" not in queue[0]


def test_moderation_publishes_approved_reports_only(app: dict) -> None:
    a, b = app["ids"]["a"], app["ids"]["b"]
    url = f"{app['base']}/api/reports"
    assert httpx.post(f"{url}/{a}/moderation", json={"decision": "approve"}).status_code == 401
    no_reason = httpx.post(f"{url}/{b}/moderation", json={"decision": "reject"}, headers=app["mod"])
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["detail"]
    ok = httpx.post(f"{url}/{a}/moderation", json={"decision": "approve"}, headers=app["mod"], timeout=60)
    assert ok.status_code == 200 and ok.json()["status"] == "approved" and ok.json()["moderated_by"] == "moderator-test"
    rejected = httpx.post(f"{url}/{b}/moderation", json={"decision": "reject", "reason": "a sand quarry with a "
                          "licence, not illegal mining"}, headers=app["mod"], timeout=60)
    assert rejected.status_code == 200 and rejected.json()["reason"].startswith("a sand quarry")

    # OGC API Features (OWSLib): the approved report, without personal data; the rejected one absent
    items = ogc_items(app)
    assert a in items and b not in items
    props = items[a]
    assert props["text"] == "Fresh pits and a motor pump by the forest road"
    assert props["location_source"] == "exif" and props["n_media"] == 1
    assert not {"contact", "client_ip", "reason", "moderated_by"} & set(props)
    assert "example.org" not in json.dumps(items)
    # WFS 2.0 (OWSLib) and GDAL's WFS driver (as QGIS reads it)
    features = wfs_features(app)
    assert [f["properties"]["text"] for f in features] == ["Fresh pits and a motor pump by the forest road"]
    if OGRINFO:
        out = subprocess.run([OGRINFO, "-ro", "-al", f"WFS:{app['base']}/ows?", "reports"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "Fresh pits and a motor pump" in out.stdout and "Sand spoil" not in out.stdout
        assert "example.org" not in out.stdout
    # WMS: the report is drawn and GetFeatureInfo (HTML) names it, escaped
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*NEAR)
    gfi = httpx.get(app["base"] + "/ows", params={
        "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetFeatureInfo", "LAYERS": "reports", "STYLES": "",
        "QUERY_LAYERS": "reports", "CRS": "EPSG:3857", "BBOX": f"{x - 500},{y - 500},{x + 500},{y + 500}",
        "WIDTH": "101", "HEIGHT": "101", "I": "50", "J": "50", "INFO_FORMAT": "text/html", "FORMAT": "image/png"},
        timeout=60)
    assert gfi.status_code == 200 and "Fresh pits and a motor pump" in gfi.text, gfi.text[:500]
    assert "example.org" not in gfi.text
    # the public report and its photo, and the nearby site page
    public = httpx.get(f"{url}/{a}").json()
    assert public["status"] == "approved" and "contact" not in public
    assert httpx.get(app["base"] + public["media"][0]["url"]).status_code == 200
    assert httpx.get(f"{url}/{b}").status_code == 404
    site = httpx.get(f"{app['base']}/sites/{app['site_id']}?lang=en").text
    assert "Fresh pits and a motor pump" in site and f'data-report-id="{a}"' in site
    assert "Sand spoil" not in site and "example.org" not in site
    assert "Reports from people nearby" in site
    report = httpx.get(f"{app['base']}/api/sites/{app['site_id']}/report.html?lang=en").text  # the evidence report
    assert "Fresh pits and a motor pump" in report and "Sand spoil" not in report and "example.org" not in report
    # rejected reports keep their reason, for moderators only
    listed = httpx.get(f"{url}?status=rejected", headers=app["mod"]).json()
    assert [(r["id"], r["reason"]) for r in listed] == [(b, "a sand quarry with a licence, not illegal mining")]
    with app["store"].session() as s:
        audit = s.execute(text("select count(*) from audit_log where action = :a"),
                          {"a": f"POST /api/reports/{a}/moderation"}).scalar_one()
    assert audit >= 1


def test_video_is_probed_stripped_and_gets_a_poster(app: dict) -> None:
    clip = video(app["tmp"], 1, "ok.mp4")
    assert b"secret" in clip
    r = post(app, [("clip.mp4", clip, "video/mp4")], text="A video of the pumps at night", lon=FAR[0], lat=FAR[1])
    assert r.status_code == 201, r.text
    media = r.json()["media"][0]
    assert media["kind"] == "video" and media["duration_s"] == pytest.approx(1.0, abs=0.2)
    report = httpx.get(f"{app['base']}/api/reports/{r.json()['id']}", headers=app["mod"]).json()
    stored_clip = httpx.get(app["base"] + report["media"][0]["url"], headers=app["mod"])
    assert stored_clip.headers["content-type"] == "video/mp4" and b"secret" not in stored_clip.content
    poster = httpx.get(app["base"] + report["media"][0]["poster_url"], headers=app["mod"])
    assert poster.status_code == 200 and Image.open(io.BytesIO(poster.content)).size == (64, 48)


def test_heic_and_webp_photos_become_plain_jpegs(app: dict) -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    for fmt, name, ctype in (("HEIF", "IMG_5001.HEIC", "image/heic"), ("WEBP", "shot.webp", "image/webp")):
        r = post(app, [(name, photo((40, 90, 160), gps=FAR, fmt=fmt), ctype)], text=f"pits, from a {fmt} photo",
                 share_location="false")
        assert r.status_code == 201, r.text
        assert r.json()["location_source"] == "exif" and r.json()["lat"] == pytest.approx(FAR[1], abs=1e-4)
        report = httpx.get(f"{app['base']}/api/reports/{r.json()['id']}", headers=app["mod"]).json()
        fmt_out, tags, gps = exif_of(httpx.get(app["base"] + report["media"][0]["url"], headers=app["mod"]).content)
        assert (fmt_out, tags, gps) == ("JPEG", {}, {})


# -- hostile files: refused with 4xx, nothing stored -------------------------------------------------------
def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("index.html", "<html><script>alert(document.cookie)</script></html>")
    return out.getvalue()


HOSTILE = {
    "svg with script": (("map.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
                         b"<script>alert(1)</script></svg>", "image/svg+xml"), 415, "SVG"),
    "html named .jpg": (("photo.jpg", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
                         "image/jpeg"), 415, "HTML"),
    "jpeg + zip polyglot": (("photo.jpg", photo((10, 20, 30)) + _zip(), "image/jpeg"), 415, "polyglot"),
    "png + html polyglot": (("photo.png", photo((10, 20, 30), fmt="PNG") + b"<html><script>x()</script></html>",
                             "image/png"), 415, "polyglot"),
    "zip archive": (("photos.jpg", _zip(), "image/jpeg"), 415, "ZIP"),
}


def test_hostile_files_are_refused_and_nothing_is_stored(app: dict) -> None:
    before = stored(app)
    cases = {**HOSTILE,
             "20000 x 20000 png bomb": (("bomb.png", png_bomb(), "image/png"), 413, "before decoding"),
             "video over the limit": (("long.mp4", video(app["tmp"], 3, "long.mp4"), "video/mp4"), 413, "longer")}
    bomb = cases["20000 x 20000 png bomb"][0][1]
    assert len(bomb) < 200_000  # small on disk
    for what, ((name, content, ctype), status, says) in cases.items():
        r = post(app, [("ok.jpg", photo((1, 2, 3), gps=NEAR), "image/jpeg"), (name, content, ctype)],
                 text=f"hostile upload: {what}", lon=NEAR[0], lat=NEAR[1])
        assert r.status_code == status, (what, r.status_code, r.text)
        detail = r.json()["detail"]
        assert says in detail and name in detail, (what, detail)
        assert "/tmp" not in detail and "staging" not in detail
        assert stored(app) == before, what  # no row, no stored file, no staging leftover


def test_duplicates_honeypot_and_bad_fields(app: dict) -> None:
    before = stored(app)
    again = post(app, [("IMG_0001.JPG", photo((200, 120, 40), gps=NEAR), "image/jpeg")], text="the same photo")
    assert again.status_code == 202 and again.json() == {**again.json(), "id": app["ids"]["a"], "duplicate": True}
    same_text = post(app, [("other.jpg", photo((90, 90, 90)), "image/jpeg")],
                     text="  fresh PITS and a motor pump by the forest road ", lon=NEAR[0] + 0.0005, lat=NEAR[1])
    assert same_text.status_code == 202 and same_text.json()["id"] == app["ids"]["a"]
    bot = post(app, [("x.jpg", photo((5, 5, 5)), "image/jpeg")], text="buy now", lon=27.0, lat=51.0,
               website="http://spam.example")
    assert bot.status_code == 400 and "website" in bot.json()["detail"]
    nowhere = post(app, [("x.jpg", photo((6, 6, 6)), "image/jpeg")], text="no position anywhere")
    assert nowhere.status_code == 400 and "position" in nowhere.json()["detail"]
    bad = post(app, [("x.jpg", photo((7, 7, 7)), "image/jpeg")], text="x", lon="east", lat=51)
    assert bad.status_code == 400 and "lon" in bad.json()["detail"]
    empty = httpx.post(app["base"] + "/api/reports", data={"text": "no files", "lon": "27", "lat": "51"})
    assert empty.status_code == 400 and "files" in empty.json()["detail"]
    assert stored(app) == before


def test_upload_cap_before_anything_is_stored(app: dict) -> None:
    before = stored(app)
    big = os.urandom(6 << 20)  # over report_max_upload_mb=5
    r = post(app, [("big.jpg", b"\xff\xd8\xff" + big, "image/jpeg")], text="too big", lon=27.0, lat=51.0)
    assert r.status_code == 413 and "AMBERWATCH_REPORT_MAX_UPLOAD_MB" in r.json()["detail"]
    one_big = post(app, [("big.jpg", b"\xff\xd8\xff" + big[: 3 << 20], "image/jpeg")], text="a big photo",
                   lon=27.0, lat=51.0)
    assert one_big.status_code == 413 and "2 MB" in one_big.json()["detail"]
    assert stored(app) == before


# -- the portal at a phone's viewport ---------------------------------------------------------------------
def test_report_form_and_moderation_queue_on_a_phone(app: dict, browser: Any) -> None:
    here = (27.2012, 51.4009)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  locale="uk-UA", geolocation={"longitude": here[0], "latitude": here[1]},
                                  permissions=["geolocation"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app["base"] + "/")
    page.click('header nav a[href="/report"]')
    page.wait_for_url("**/report")
    assert page.locator("h1").inner_text() == "Повідомити про видобуток бурштину"
    page.wait_for_selector("#report-map[data-state=ready]", timeout=20000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form is wider than the phone ({width} px)"
    # the map's zoom buttons show their icons at a finger's size (the form's button style once squeezed them empty)
    icon = page.locator(".maplibregl-ctrl-zoom-in .maplibregl-ctrl-icon").bounding_box()
    assert icon is not None and icon["width"] >= 29 and icon["height"] >= 29, icon
    page.fill("#report-text", "Нові копанки біля дороги")
    page.click("#report-locate")
    page.wait_for_function("document.getElementById('report-lon').value !== ''")
    assert float(page.input_value("#report-lat")) == pytest.approx(here[1], abs=1e-5)
    page.set_input_files("#report-files", files=[{"name": "IMG_2041.jpg", "mimeType": "image/jpeg",
                                                  "buffer": photo((120, 80, 20), gps=FAR)}])
    page.click("#report-submit")
    page.wait_for_selector("#report-done:not([hidden])", timeout=30000)
    rid = int(page.inner_text("#report-id").lstrip("#"))
    report = httpx.get(f"{app['base']}/api/reports/{rid}", headers=app["mod"]).json()
    assert report["status"] == "pending" and report["location_source"] == "gps"
    assert (report["lon"], report["lat"]) == (pytest.approx(here[0], abs=1e-5), pytest.approx(here[1], abs=1e-5))
    assert report["text"] == "Нові копанки біля дороги"

    # the moderation queue: the key typed into the page, the report approved there
    page.goto(app["base"] + "/moderation?lang=en")
    wrong = httpx.get(f"{app['base']}/api/reports?status=pending", headers={"Authorization": "Bearer aw_wrong"})
    assert wrong.status_code == 401 and wrong.json()["detail"]
    page.fill("#mod-key", "aw_wrong")  # a wrong key: the API's own message in the page
    page.click("#mod-load")
    page.wait_for_function("document.getElementById('mod-error').textContent !== ''")
    assert page.text_content("#mod-error") == wrong.json()["detail"]
    page.fill("#mod-key", app["mod"]["Authorization"].removeprefix("Bearer "))
    page.click("#mod-load")
    item = page.locator(f'#mod-queue li[data-report-id="{rid}"]')
    item.wait_for(timeout=20000)
    assert page.evaluate("sessionStorage.getItem('amberwatch.moderator_key')").startswith("aw_")
    item.locator("button.primary").click()
    page.wait_for_function(f"document.getElementById('mod-status').textContent.includes('#{rid}')")
    assert httpx.get(f"{app['base']}/api/reports/{rid}").json()["status"] == "approved"
    assert not errors, errors
    context.close()


# -- last: the rate limit and the retention purge -------------------------------------------------------
def test_rate_limit_per_address(app: dict) -> None:
    statuses = []
    for _ in range(40):
        r = httpx.post(app["base"] + "/api/reports", data={"text": "x"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert "reports" in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
            break
    assert statuses[-1] == 429 and statuses.count(429) == 1


def test_retention_purge_cli(app: dict) -> None:
    settings: Settings = app["settings"]
    with app["store"].session() as s:
        assert s.execute(text("select count(*) from crowd_reports where client_ip is not null")).scalar_one() > 0
        assert s.execute(text("select count(client) from audit_log where action = 'POST /api/reports'")).scalar_one()
        rejected = s.execute(text("select m.file_name from crowd_report_media m join crowd_reports r on "
                                  "r.id = m.report_id where r.status = 'rejected'")).scalars().all()
    media = settings.data_dir.resolve() / "crowd" / "media"
    assert rejected and all((media / n).is_file() for n in rejected)
    env = {**os.environ, "AMBERWATCH_DATABASE_URL": str(settings.database_url),
           "AMBERWATCH_DATA_DIR": str(settings.data_dir), "AMBERWATCH_REPORT_RETENTION_DAYS": "0"}
    out = subprocess.run([sys.executable, "-m", "amberwatch", "reports", "purge"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "purged" in out.stdout
    with app["store"].session() as s:
        left = s.execute(text("select count(*) from crowd_reports where client_ip is not null or contact is not null"
                              " or personal_purged_at is null")).scalar_one()
        reasons = s.execute(text("select reason from crowd_reports where status = 'rejected'")).scalars().all()
        audited = s.execute(text("select count(*), count(client) from audit_log where action = 'POST /api/reports'"
                                 " and role is null")).one()
    assert left == 0 and reasons == ["a sand quarry with a licence, not illegal mining"]
    assert audited[0] > 10 and audited[1] == 0  # the addresses in the audit log went too
    assert not any((media / n).exists() for n in rejected)
