"""Field checks (issue 10): the idempotent upload (the phone's UUID), safe photos, field checks overriding votes
on the layers and the site page, and the offline phone app in a real browser (Debian's chromium via Playwright):
the service worker serves the app with the network off, a check saved offline is sent when the phone is back
online, and a retry after a lost answer stores nothing new."""

from __future__ import annotations

import io
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from publish_helpers import app_settings, publish_polygons, uvicorn_thread
from shapely.geometry import box
from sqlalchemy import func, select

from amberwatch.store.db import Store
from amberwatch.store.models import Detection, FieldCheck
from amberwatch.usecases import keys as keys_uc
from amberwatch.validation.items import NewItem

ORIGIN = (27.1, 51.5)
FOOTPRINT = box(ORIGIN[0] - 0.2, ORIGIN[1] - 0.1, ORIGIN[0] + 0.2, ORIGIN[1] + 0.1)


def square(i: int, d: float = 0.0009) -> Any:
    cx = ORIGIN[0] - 0.1 + 0.02 * i
    return box(cx - d, ORIGIN[1] - d, cx + d, ORIGIN[1] + d)


@pytest.fixture(scope="module")
def env(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from amberwatch.usecases import validation as validation_uc
    from amberwatch.web.app import create_app

    tmp = tmp_path_factory.mktemp("field")
    url = make_database("amberwatch_field")
    # many uploads from one address in a minute
    settings = app_settings(url, tmp / "data", rate_limit_writes="10000/minute")
    store = Store(settings).start()
    run_id = publish_polygons(store, settings, "FIELD_20250701", datetime(2025, 7, 1, tzinfo=UTC), FOOTPRINT,
                              [square(i) for i in range(3)])
    with store.session() as s:
        rows = s.execute(select(Detection.id, Detection.site_id).where(Detection.run_id == run_id)
                         .order_by(Detection.id)).all()
    items = validation_uc.add_items(store, settings, [NewItem("detection", "uncertain", detection_id=rows[0][0])])
    keys = {name: keys_uc.create_key(store, name, role)[1] for name, role in
            (("team-a", "field"), ("team-b", "field"), ("lead", "analyst"), ("vol-1", "validator"),
             ("vol-2", "validator"), ("vol-3", "validator"))}
    app = create_app(settings, store, worker=False)
    with uvicorn_thread(app, settings.port, "/health") as url:
        yield {"store": store, "settings": settings, "url": url, "keys": keys, "tmp": tmp, "item": items[0],
               "detections": [r[0] for r in rows], "sites": [r[1] for r in rows]}
    store.stop()


def call(env: dict[str, Any], method: str, path: str, who: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {env['keys'][who]}"} if who else {}
    return httpx.request(method, env["url"] + path, headers=headers, timeout=60, **kw)


def jpeg_with_exif() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 170, 90))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel X"  # Model
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def form(site: int, check_id: str | None = None, **over: Any) -> dict[str, str]:
    return {"id": check_id or str(uuid.uuid4()), "site_id": str(site), "checked_on": "2025-08-14",
            "observer": "Olena K.", "state": "abandoned", "disturbance": "4", "lon": str(ORIGIN[0]),
            "lat": str(ORIGIN[1]), "accuracy_m": "6", "notes": "pits overgrown with birch", **over}


def stored(env: dict[str, Any], check_id: str | None = None) -> int:
    with env["store"].session() as s:
        q = select(func.count()).select_from(FieldCheck)
        if check_id is not None:
            q = q.where(FieldCheck.id == uuid.UUID(check_id))
        return int(s.scalar(q))


def test_assignments_and_form(env: dict[str, Any]) -> None:
    body = {"site_ids": [env["sites"][0], env["sites"][1]], "assignee": "team-a"}
    assert call(env, "POST", "/api/field/assignments", "team-a", json=body).status_code == 403
    assert call(env, "POST", "/api/field/assignments", "lead", json=body).status_code == 201
    assert call(env, "POST", "/api/field/assignments", "lead",
                json={"site_ids": [env["sites"][2]], "assignee": None}).status_code == 201  # every team
    assert call(env, "POST", "/api/field/assignments", "lead", json={"site_ids": [999999]}).status_code == 404
    mine = call(env, "GET", "/api/field/sites", "team-a").json()
    assert [s["site_id"] for s in mine] == env["sites"]
    assert [s["site_id"] for s in call(env, "GET", "/api/field/sites", "team-b").json()] == [env["sites"][2]]
    assert call(env, "GET", "/api/field/sites", "vol-1").status_code == 403
    assert call(env, "GET", "/api/field/sites").status_code == 401
    scale = call(env, "GET", "/api/field/form").json()["disturbance_scale"]
    assert sorted(scale) == ["1", "2", "3", "4", "5"] and scale["5"]["uk"]


def test_idempotent_upload_and_safe_photos(env: dict[str, Any], tmp_path: Path) -> None:
    site = env["sites"][1]
    fields = form(site)
    files = [("photos", ("IMG_0001.jpg", jpeg_with_exif(), "image/jpeg"))]
    first = call(env, "POST", "/api/field-checks", "team-a", data=fields, files=files)
    assert first.status_code == 201, first.text
    again = call(env, "POST", "/api/field-checks", "team-a", data=fields, files=files)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"] == fields["id"]
    assert stored(env, fields["id"]) == 1
    photo = call(env, "GET", f"/api/field-checks/{fields['id']}/photos/0.jpg")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    reread = Image.open(io.BytesIO(photo.content))
    assert reread.size == (64, 48) and len(reread.getexif()) == 0  # the camera tags are gone
    assert call(env, "GET", f"/api/field-checks/{fields['id']}/photos/1.jpg").status_code == 404
    listed = call(env, "GET", f"/api/validation/sites/{site}").json()["field_checks"]  # as the site page links it
    url = next(c["photos"][0] for c in listed if c["id"] == fields["id"])
    assert call(env, "GET", url).content == photo.content
    before = stored(env)
    hostile = [  # (form changes, files, status)
        ({}, [("photos", ("x.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"))], 400),
        ({}, [("photos", ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"))], 400),
        ({"id": "not-a-uuid"}, [], 400),
        ({"state": "flooded"}, [], 400),
        ({"disturbance": "7"}, [], 422),
        ({"site_id": "999999"}, [], 404),
        ({"lat": ""}, [], 400),
        ({"checked_on": "2099-01-01"}, [], 400),
    ]
    for change, hostile_files, status in hostile:
        res = call(env, "POST", "/api/field-checks", "team-a", data=form(site, **change), files=hostile_files)
        assert res.status_code == status, (change, res.text)
        assert "/tmp" not in res.text
    def png(w: int, h: int) -> bytes:
        buf = io.BytesIO()
        Image.new("L", (w, h), 120).save(buf, "PNG")
        return buf.getvalue()

    bomb = call(env, "POST", "/api/field-checks", "team-a", data=form(site),
                files=[("photos", ("bomb.png", png(7000, 7000), "image/png"))])  # 49 Mpx in a few kB
    assert bomb.status_code == 413 and "pixels" in bomb.json()["detail"]
    ok = call(env, "POST", "/api/field-checks", "team-a", data=form(site),
              files=[("photos", ("big.png", png(3000, 2500), "image/png"))])
    assert ok.status_code == 201, ok.text
    assert Image.open(io.BytesIO(call(env, "GET", f"/api/field-checks/{ok.json()['id']}/photos/0.jpg").content)
                      ).size == (2048, 1707)  # re-encoded, at most 2048 px on a side
    assert stored(env) == before + 1
    assert call(env, "POST", "/api/field-checks", "vol-1", data=form(site)).status_code == 403


def test_field_check_overrides_votes(env: dict[str, Any]) -> None:
    item, site = env["item"], env["sites"][0]
    for who in ("vol-1", "vol-2", "vol-3"):
        res = call(env, "POST", f"/api/validation/items/{item}/votes", who, json={"answer": "mining"})
        assert res.status_code == 201, res.text
    assert res.json()["status"] == "confirmed"
    props = call(env, "GET", f"/ogcapi/collections/mining_sites/items/{site}?f=json").json()["properties"]
    assert (props["validation_status"], props["field_checked"]) == ("confirmed", False)
    res = call(env, "POST", "/api/field-checks", "lead", data=form(site, state="not_mining", disturbance="1",
                                                                   notes="a sand road, no pits"))
    assert res.status_code == 201, res.text
    state = call(env, "GET", f"/api/validation/items/{item}", "lead").json()
    assert (state["status"], state["final_answer"], state["decided_via"]) == ("rejected", "not_mining",
                                                                              "field_check")
    props = call(env, "GET", f"/ogcapi/collections/mining_sites/items/{site}?f=json").json()["properties"]
    assert (props["validation_status"], props["field_checked"]) == ("rejected", True)
    det = call(env, "GET", f"/ogcapi/collections/detections/items/{env['detections'][0]}?f=json").json()
    assert det["properties"]["field_checked"] is True
    # an analyst's later decision does not beat the field check
    call(env, "POST", f"/api/validation/items/{item}/decision", "lead", json={"answer": "mining"})
    assert call(env, "GET", f"/api/validation/items/{item}", "lead").json()["decided_via"] == "field_check"
    html = call(env, "GET", f"/sites/{site}?lang=en").text
    assert 'data-status="rejected"' in html and "checked in the field" in html and "a sand road, no pits" in html
    assert "not mining" in html and "1 / 5" in html
    # the evidence report (HTML and PDF) carries the same checks
    report = call(env, "GET", f"/api/sites/{site}/report.html?lang=en").text
    assert 'id="report-validation" data-status="rejected"' in report and "checked in the field" in report
    assert "a sand road, no pits" in report and "1 / 5" in report
    pdf = call(env, "GET", f"/api/sites/{site}/report.pdf?lang=en")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = " ".join(subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True,
                                   check=True).stdout.decode().split())
    assert "Validation and field checks" in text and "a sand road, no pits" in text


def test_offline_check_synced_once(env: dict[str, Any], browser: Any) -> None:
    assert call(env, "POST", "/api/field/assignments", "lead",  # (again: the test may run alone)
                json={"site_ids": env["sites"], "assignee": "team-a"}).status_code == 201
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  locale="en-GB")
    page = context.new_page()
    page.goto(env["url"] + "/field/")
    page.fill("#key", env["keys"]["team-a"])
    page.click("#save-key")
    page.wait_for_function("document.querySelectorAll('#site option').length === 3")
    states = page.eval_on_selector_all("#state option", "options => options.map(o => o.textContent)")
    assert states == ["active mining", "abandoned", "recultivated", "not mining"], states  # words, not message keys
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the service worker's control, which caches the shell and the sites on the way
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.wait_for_function("document.querySelectorAll('#site option').length === 3")

    context.set_offline(True)
    response = page.reload()
    assert response is not None and response.from_service_worker  # the app shell from the cache
    page.wait_for_function("document.querySelectorAll('#site option').length === 3")  # the sites from the cache
    assert page.text_content("#net") == "offline"
    page.select_option("#site", str(env["sites"][2]))
    page.fill("#observer", "Taras B.")
    page.select_option("#state", "recultivated")
    page.select_option("#disturbance", "2")
    page.fill("#lon", "27.12")
    page.fill("#lat", "51.5")
    page.fill("#notes", "pine seedlings planted")
    page.set_input_files("#photos", files=[{"name": "site.jpg", "mimeType": "image/jpeg",
                                            "buffer": jpeg_with_exif()}])
    page.click("#submit")
    page.wait_for_function("document.getElementById('status').textContent.includes('Waiting to be sent: 1')")
    queued = page.evaluate("window.awField.queued().then(q => q.map(r => r.id))")
    assert len(queued) == 1 and stored(env, queued[0]) == 0  # nothing left the phone

    # back online: the first upload reaches the server but its answer is lost; the app keeps the check and sends
    # it again; the server answers the same id and stores nothing new
    posts: list[int] = []

    def lose_first_answer(route: Any) -> None:
        posts.append(1)
        if len(posts) == 1:
            route.fetch()  # the server gets and stores it ...
            route.abort("connectionreset")  # ... and the phone never hears back
        else:
            route.continue_()

    context.route("**/api/field-checks", lose_first_answer)
    context.set_offline(False)
    page.wait_for_function("window.awField && navigator.onLine")
    page.evaluate("window.awField.syncQueue()")
    assert stored(env, queued[0]) == 1
    assert page.evaluate("window.awField.queued().then(q => q.length)") == 1  # no answer: still waiting
    page.click("#sync")
    page.wait_for_function("window.awField.queued().then(q => q.length === 0)")
    page.wait_for_function("document.getElementById('status').textContent.includes('Sent: 1')")
    assert len(posts) == 2 and stored(env, queued[0]) == 1
    with env["store"].session() as s:
        row = s.get(FieldCheck, uuid.UUID(queued[0]))
        assert row is not None
        assert (row.site_id, row.state, row.disturbance, row.observer, row.submitted_by, len(row.photos)) == (
            env["sites"][2], "recultivated", 2, "Taras B.", "team-a", 1)
    context.close()
