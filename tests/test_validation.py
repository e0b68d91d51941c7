"""Volunteer validation (issue 10): the queue, votes and the agreement rule, the expert's decision, gold scoring,
the status on the published layers (OGC API Features and WFS through the real served app) and the training labels
read back by the training loader.

The tests are the steps of one scenario on one database (items queued, voted, disputed, decided, exported), in
file order: run the module, not a single test."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from publish_helpers import OGRINFO, app_settings, publish_polygons, uvicorn_thread
from shapely.geometry import box
from sqlalchemy import select

from amberwatch.store.db import Store
from amberwatch.store.models import Detection, ValidationItem, ValidationVote
from amberwatch.store.queries import validation as vq
from amberwatch.usecases import keys as keys_uc
from amberwatch.validation import rules
from amberwatch.validation.items import NewItem

ORIGIN = (26.3, 51.3)
FOOTPRINT = box(ORIGIN[0] - 0.3, ORIGIN[1] - 0.2, ORIGIN[0] + 0.3, ORIGIN[1] + 0.2)


def square(i: int, d: float = 0.0009) -> Any:
    cx, cy = ORIGIN[0] - 0.2 + 0.02 * i, ORIGIN[1]
    return box(cx - d, cy - d, cx + d, cy + d)


@pytest.fixture(scope="module")
def env(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app under uvicorn (MapServer WFS, pygeoapi) on its own database with one published run of 8 pits."""
    from amberwatch.web.app import create_app

    tmp = tmp_path_factory.mktemp("validation")
    url = make_database("amberwatch_validation")
    # dozens of votes from one address in a minute
    settings = app_settings(url, tmp / "data", rate_limit_writes="10000/minute")
    store = Store(settings).start()
    run_id = publish_polygons(store, settings, "VALIDATION_20250601", datetime(2025, 6, 1, tzinfo=UTC), FOOTPRINT,
                              [square(i) for i in range(8)])
    with store.session() as s:
        rows = s.execute(select(Detection.id, Detection.site_id).where(Detection.run_id == run_id)
                         .order_by(Detection.id)).all()
    keys = {name: keys_uc.create_key(store, name, role)[1] for name, role in
            (("vol-1", "validator"), ("vol-2", "validator"), ("vol-3", "validator"), ("vol-4", "validator"),
             ("vol-5", "validator"), ("expert", "analyst"))}
    app = create_app(settings, store, worker=False)
    with uvicorn_thread(app, settings.port, "/health") as url:
        yield {"store": store, "settings": settings, "tmp": tmp, "url": url, "keys": keys,
               "detections": [r[0] for r in rows], "sites": [r[1] for r in rows]}
    store.stop()


def call(env: dict[str, Any], method: str, path: str, who: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {env['keys'][who]}"} if who else {}
    return httpx.request(method, env["url"] + path, headers=headers, timeout=60, **kw)


def item_of(env: dict[str, Any], detection_id: int) -> int:
    with env["store"].session() as s:
        return int(s.scalar(select(ValidationItem.id).where(ValidationItem.detection_id == detection_id,
                                                            ValidationItem.source == "uncertain")))


def vote(env: dict[str, Any], item: int, who: str, answer: str, reason: str | None = None) -> httpx.Response:
    return call(env, "POST", f"/api/validation/items/{item}/votes", who, json={"answer": answer, "reason": reason})


def layer_status(env: dict[str, Any], collection: str, fid: int) -> dict[str, Any]:
    """validation_status and field_checked of one feature, from OGC API Features (pygeoapi)."""
    res = call(env, "GET", f"/ogcapi/collections/{collection}/items/{fid}?f=json")
    assert res.status_code == 200, res.text
    props = res.json()["properties"]
    return {"validation_status": props["validation_status"], "field_checked": props["field_checked"]}


def wfs_statuses(env: dict[str, Any], layer: str, id_field: str) -> dict[int, str]:
    """id -> validation_status of every feature of a layer through WFS 2.0 (GDAL's WFS driver, as QGIS)."""
    if OGRINFO is None:
        pytest.skip("ogrinfo not installed")
    out = subprocess.run([OGRINFO, "-ro", "-al", "-q", f"WFS:{env['url']}/ows?", layer], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ids = [int(v) for v in re.findall(rf"^\s+{id_field} \(\w+\) = (\d+)$", out.stdout, flags=re.M)]
    statuses = re.findall(r"^\s+validation_status \(String\) = (\w+)$", out.stdout, flags=re.M)
    assert len(ids) == len(statuses) > 0, out.stdout[:2000]
    return dict(zip(ids, statuses, strict=True))


def rgb_scene(tmp: Path) -> Path:
    """A red/green/blue GeoTIFF in UTM 35N over the footprint, 20 m pixels (a gradient, as an image)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    path = tmp / "scene.tif"
    if path.exists():
        return path
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", "EPSG:32635", *FOOTPRINT.bounds)
    width, height = int((x1 - x0) // 20), int((y1 - y0) // 20)
    ramp = np.linspace(300, 1500, width, dtype="float32")[None, :].repeat(height, 0)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint16",
                       crs="EPSG:32635", transform=from_origin(x0, y1, 20, 20)) as dst:
        dst.write(np.stack([ramp, ramp * 0.9, ramp * 0.8]).astype("uint16"))
    return path


def test_agreement_rule() -> None:
    v = rules.Vote
    assert rules.votes_to_agree(3) == 2 and rules.votes_to_agree(5) == 4 and rules.votes_to_agree(1) == 1
    assert rules.from_votes([], 3).status == "unvalidated"
    assert rules.from_votes([v("mining"), v("mining")], 3).status == "pending"
    assert rules.from_votes([v("mining"), v("unsure"), v("mining")], 3) == rules.Settled(
        "confirmed", "mining", None, "votes")
    assert rules.from_votes([v("not_mining", "beach"), v("not_mining", "quarry"), v("not_mining", "quarry")],
                            3) == rules.Settled("rejected", "not_mining", "quarry", "votes")
    assert rules.from_votes([v("mining"), v("not_mining", "beach"), v("unsure")], 3).status == "disputed"
    assert rules.from_votes([v("unsure")] * 3, 3).status == "disputed"
    five = [v("mining")] * 3 + [v("not_mining", "cloud")] * 2
    assert rules.from_votes(five, 5).status == "disputed"  # 3 of 5 < ⌈10/3⌉ = 4
    assert rules.settle(five, 5, expert=v("mining")).via == "expert"
    assert rules.settle(five, 5, expert=v("mining"), field_state="not_mining").answer == "not_mining"
    assert rules.reliability([("mining", "mining"), ("unsure", "mining"), ("not_mining", "not_mining")]) == 2 / 3
    assert rules.reliability([]) is None


def test_add_items_and_reference_answers(env: dict[str, Any]) -> None:
    """The store functions the accuracy assessment builds on: items in, settled answers out."""
    store = env["store"]
    det = env["detections"][7]
    with store.session() as s:
        ids = vq.add_items(s, [
            NewItem("detection", "accuracy_sample", detection_id=det, sample="accuracy:test"),
            NewItem("location", "accuracy_sample", geom_wkt="POINT(26.5 51.4)", sample="accuracy:test"),
            NewItem("location", "gold", geom_wkt="POLYGON((26.5 51.4,26.51 51.4,26.51 51.41,26.5 51.4))",
                    expected_answer="not_mining", sample="accuracy:test"),
        ])
        again = vq.add_items(s, [NewItem("detection", "accuracy_sample", detection_id=det)])
    assert again == ids[:1] and len(set(ids)) == 3
    with store.session() as s:
        refs = vq.reference_answers(s, sample="accuracy:test")
        assert list(refs) == [ids[2]] and refs[ids[2]].answer == "not_mining" and refs[ids[2]].via == "gold"
        assert vq.reference_answers(s, ids[:2]) == {}
        with pytest.raises(LookupError):
            vq.add_items(s, [NewItem("detection", "uncertain", detection_id=10**12)])


def test_queue_order_and_never_twice(env: dict[str, Any]) -> None:
    res = call(env, "POST", "/api/validation/enqueue", "expert", json={"threshold": 0.7, "margin": 0.15})
    assert res.status_code == 200, res.text
    # 8 new sites; confidence 0.8 is 0.1 from 0.7, but detection 7 is in the accuracy sample already
    assert res.json() == {"new_site": 8, "uncertain": 7}
    assert call(env, "POST", "/api/validation/enqueue", "expert", json={}).json() == {"new_site": 0, "uncertain": 0}
    assert call(env, "POST", "/api/validation/enqueue", "vol-1", json={}).status_code == 403
    assert call(env, "GET", "/api/validation/next").status_code == 401
    assert call(env, "POST", "/api/validation/items/1/votes", json={"answer": "maybe"}).status_code == 401
    assert call(env, "POST", "/api/validation/items/1/decision", "vol-1", json={"answer": "mining"}
                ).status_code == 403
    first = call(env, "GET", "/api/validation/next", "vol-4").json()
    assert first["kind"] == "site" and first["site_id"] == min(env["sites"])  # new sites first
    assert "source" not in first and first["geometry"]["type"] == "MultiPolygon"
    assert first["chips"] == {w: f"/api/validation/items/{first['id']}/chips/{w}.png" for w in ("before", "after")}
    assert {r["code"] for r in first["reasons"]} == set(rules.REASONS) and first["reasons"][0]["uk"]
    assert vote(env, first["id"], "vol-4", "mining").status_code == 201
    assert vote(env, first["id"], "vol-4", "mining").status_code == 409  # one vote per volunteer
    second = call(env, "GET", "/api/validation/next", "vol-4").json()
    assert second["id"] != first["id"] and second["kind"] == "site"
    assert call(env, "GET", "/api/validation/next", "vol-1").json()["id"] == first["id"]  # vol-1 has not voted


def test_three_votes_agree(env: dict[str, Any]) -> None:
    det = env["detections"][0]
    item = item_of(env, det)
    assert layer_status(env, "detections", det)["validation_status"] == "pending"  # its site has vol-4's vote
    assert layer_status(env, "detections", env["detections"][4])["validation_status"] == "unvalidated"
    assert vote(env, item, "vol-1", "mining").json()["status"] == "pending"
    assert vote(env, item, "vol-2", "not_mining").status_code == 400  # a rejection needs its reason
    assert vote(env, item, "vol-2", "not_mining", "volcano").status_code == 422
    assert vote(env, item, "vol-2", "mining", "beach").status_code == 400
    assert vote(env, item, "vol-2", "mining").json()["status"] == "pending"
    out = vote(env, item, "vol-3", "unsure").json()
    assert out == {"id": item, "status": "confirmed", "final_answer": "mining", "final_reason": None,
                   "decided_via": "votes"}
    assert vote(env, item, "vol-4", "not_mining", "beach").status_code == 409  # it has its 3 votes
    assert layer_status(env, "detections", det)["validation_status"] == "confirmed"
    assert layer_status(env, "mining_sites", env["sites"][0])["validation_status"] == "confirmed"
    # rejected by agreement, with the reason most voters gave
    item2 = item_of(env, env["detections"][2])
    vote(env, item2, "vol-1", "not_mining", "quarry")
    vote(env, item2, "vol-2", "not_mining", "beach")
    assert vote(env, item2, "vol-3", "not_mining", "quarry").json() | {"id": 0} == {
        "id": 0, "status": "rejected", "final_answer": "not_mining", "final_reason": "quarry", "decided_via": "votes"}


def test_disagreement_goes_to_the_expert(env: dict[str, Any]) -> None:
    det = env["detections"][1]
    item = item_of(env, det)
    vote(env, item, "vol-1", "mining")
    vote(env, item, "vol-2", "not_mining", "sand_road")
    assert vote(env, item, "vol-3", "unsure").json()["status"] == "disputed"
    assert layer_status(env, "detections", det)["validation_status"] == "disputed"
    assert call(env, "GET", "/api/validation/disputed", "vol-1").status_code == 403
    queue = call(env, "GET", "/api/validation/disputed", "expert").json()
    assert [q["id"] for q in queue] == [item]
    assert sorted(v["answer"] for v in queue[0]["votes"]) == ["mining", "not_mining", "unsure"]
    decision = {"answer": "not_mining", "reason": "sand_road", "note": "a forest track"}
    assert call(env, "POST", f"/api/validation/items/{item}/decision", "vol-1", json=decision).status_code == 403
    res = call(env, "POST", f"/api/validation/items/{item}/decision", "expert", json=decision)
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "rejected" and res.json()["decided_via"] == "expert"
    assert call(env, "GET", "/api/validation/disputed", "expert").json() == []
    assert layer_status(env, "detections", det)["validation_status"] == "rejected"
    assert layer_status(env, "mining_sites", env["sites"][1])["validation_status"] == "rejected"
    wfs = wfs_statuses(env, "detections", "id")
    assert (wfs[env["detections"][0]], wfs[det], wfs[env["detections"][5]]) == ("confirmed", "rejected",
                                                                                "unvalidated")
    assert wfs_statuses(env, "mining_sites", "site_id")[env["sites"][1]] == "rejected"
    with env["store"].session() as s:
        refs = vq.reference_answers(s, [item, item_of(env, env["detections"][0])])
    assert {r.answer for r in refs.values()} == {"mining", "not_mining"}
    page = call(env, "GET", f"/api/validation/sites/{env['sites'][1]}").json()
    assert page["status"] == "rejected" and page["field_checked"] is False
    html = call(env, "GET", f"/sites/{env['sites'][1]}?lang=uk").text
    assert 'data-status="rejected"' in html and "Відхилено: не видобуток" in html


def test_gold_scores_volunteers(env: dict[str, Any]) -> None:
    det = env["detections"][3]
    res = call(env, "POST", "/api/validation/gold", "expert",
               json={"kind": "detection", "detection_id": det, "expected_answer": "mining"})
    assert res.status_code == 201, res.text
    gold = res.json()["id"]
    assert call(env, "POST", "/api/validation/gold", "expert", json={
        "kind": "location", "geom_wkt": "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "expected_answer": "mining"}
        ).status_code == 400  # self-intersecting
    vote(env, gold, "vol-1", "mining")
    vote(env, gold, "vol-2", "not_mining", "cloud")
    vote(env, gold, "vol-3", "unsure")
    assert vote(env, gold, "vol-4", "mining").status_code == 201  # gold items take every volunteer's answer
    assert call(env, "GET", "/api/validation/volunteers", "vol-1").status_code == 403
    scores = {v["voter"]: v for v in call(env, "GET", "/api/validation/volunteers", "expert").json()}
    assert (scores["vol-1"]["reliability"], scores["vol-2"]["reliability"], scores["vol-3"]["reliability"],
            scores["vol-4"]["reliability"]) == (1.0, 0.0, 0.0, 1.0)
    assert scores["vol-1"]["gold_votes"] == 1 and scores["vol-1"]["votes"] == 4  # detections 0, 1, 2 and gold
    # vol-1 agreed with the final answer on 2 of the 3 settled non-gold items (the expert overruled it once)
    assert scores["vol-1"]["agreement_with_final"] == pytest.approx(2 / 3)


def test_labels_export_read_by_the_training_loader(env: dict[str, Any]) -> None:
    """``amberwatch labels export`` (the real command), read back by ``chips_from_polygons``."""
    import pyogrio

    chips = pytest.importorskip("amberwatch_training.chips")
    out = env["tmp"] / "labels.gpkg"
    environ = {**os.environ, "AMBERWATCH_DATABASE_URL": env["store"].url,
               "AMBERWATCH_DATA_DIR": str(env["settings"].data_dir)}
    res = subprocess.run([str(Path(sys.executable).parent / "amberwatch"), "labels", "export", "--out", str(out)],
                         capture_output=True, text=True, env=environ, timeout=120)
    assert res.returncode == 0, res.stderr
    # positives: detection 0 (3 votes) and the gold detection 3; negatives: detection 2 (votes), detection 1
    # (expert) and the gold location of the first test
    assert json.loads(res.stdout.strip().splitlines()[-1])["positives"] == 2
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert layers == {"labels", "rejected"}
    meta, _, _, fields = pyogrio.raw.read(out, layer="labels")
    assert sorted(fields[list(meta["fields"]).index("detection_id")]) == sorted(
        [env["detections"][0], env["detections"][3]])
    meta, _, _, fields = pyogrio.raw.read(out, layer="rejected")
    reasons = fields[list(meta["fields"]).index("reason")]
    assert sorted(str(r) for r in reasons) == ["None", "quarry", "sand_road"]  # the gold item has no reason
    scene = rgb_scene(env["tmp"])  # a small UTM raster around the pits
    polys = chips.read_polygons(out, "EPSG:32635")
    assert [cls for _, cls in polys] == [1, 1]
    written = chips.chips_from_polygons(scene, out, env["tmp"] / "chips", size=32)
    index = json.loads((env["tmp"] / "chips" / "chips.json").read_text())
    assert len(written) == 2 and all(c["pit_pixels"] > 0 for c in index["chips"])


def test_volunteer_page_in_the_browser(env: dict[str, Any], browser: Any) -> None:
    """A volunteer answers two tasks on /validate/ in chromium: the polygon is drawn, the chips point at the site's
    before/after images, a rejection without a reason is not sent, and each answer is stored as a vote."""
    page = browser.new_page(locale="uk-UA")
    page.goto(env["url"] + "/validate")
    page.fill("#key", env["keys"]["vol-5"])
    page.click("#start")
    page.wait_for_selector("#task:not([hidden])")
    first = int(page.get_attribute("#task", "data-item-id") or 0)
    assert page.get_attribute("#before", "src") == f"/api/validation/items/{first}/chips/before.png"
    assert page.get_attribute("#after", "src") == f"/api/validation/items/{first}/chips/after.png"
    assert (page.get_attribute("#shape path", "d") or "").startswith("M")
    assert page.text_content("#not-mining") == "Не видобуток"  # Ukrainian for a Ukrainian browser
    page.click("#not-mining")
    assert page.text_content("#message") == "Оберіть, що це, якщо не видобуток."
    page.select_option("#reason", "fish_pond")
    page.click("#not-mining")
    page.wait_for_function(f"document.getElementById('task').dataset.itemId !== '{first}'")
    page.click("#mining")
    page.wait_for_function("document.getElementById('message').textContent === 'Відповідь збережено.'")
    assert page.is_hidden("#expert")  # a volunteer's key sees no expert queue

    # an analyst settles a disputed item on the same page
    disputed = item_of(env, env["detections"][4])
    vote(env, disputed, "vol-1", "mining")
    vote(env, disputed, "vol-2", "not_mining", "beach")
    assert vote(env, disputed, "vol-3", "unsure").json()["status"] == "disputed"
    analyst = browser.new_page(locale="en-GB")
    analyst.goto(env["url"] + "/validate/")
    analyst.fill("#key", env["keys"]["expert"])
    analyst.click("#start")
    row = analyst.wait_for_selector(f"#disputed li[data-item-id='{disputed}']")
    assert "not_mining (beach)" in row.text_content() and analyst.is_hidden("#task")
    row.query_selector("select").select_option("clear_cut")
    row.query_selector(".decide-not-mining").click()
    analyst.wait_for_function("document.getElementById('message').textContent === 'Decision saved.'")
    analyst.wait_for_function("document.getElementById('disputed').textContent === 'Nothing disputed.'")
    state = call(env, "GET", f"/api/validation/items/{disputed}", "expert").json()
    assert (state["status"], state["final_reason"], state["decided_via"]) == ("rejected", "clear_cut", "expert")
    with env["store"].session() as s:
        votes = s.execute(select(ValidationVote.item_id, ValidationVote.answer, ValidationVote.reason)
                          .where(ValidationVote.voter == "vol-5").order_by(ValidationVote.id)).all()
    assert len(votes) == 2 and tuple(votes[0]) == (first, "not_mining", "fish_pond") and votes[1][1] == "mining"


def test_item_chips(env: dict[str, Any]) -> None:
    """Before/after chips of any item (here a point with no site) from the stored scenes, through rio-tiler."""
    from geoalchemy2.shape import from_shape
    from PIL import Image
    from shapely.geometry import MultiPolygon

    from amberwatch.store.models import Scene

    with env["store"].session() as s:
        s.add(Scene(scene_key="VALIDATION_RGB_20250801", sensor="test", family="sentinel2", level="L2A",
                    acquired=datetime(2025, 8, 1, tzinfo=UTC), resolution=20.0, crs="EPSG:32635",
                    bands=["red", "green", "blue"], cloud_fraction=0.0, source="test",
                    footprint=from_shape(MultiPolygon([FOOTPRINT]), srid=4326),
                    reflectance_path=str(rgb_scene(env["tmp"])), stac_item={}))
        point = s.scalar(select(ValidationItem.id).where(ValidationItem.kind == "location",
                                                         ValidationItem.source == "accuracy_sample"))
    res = call(env, "GET", f"/api/validation/items/{point}/chips/after.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png", res.text
    img = Image.open(io.BytesIO(res.content)).convert("RGB")
    assert img.size == (320, 320)
    assert (255, 230, 0) in {c for _, c in img.getcolors(320 * 320)}  # the point ringed in yellow
    assert call(env, "GET", f"/api/validation/items/{point}/chips/sideways.png").status_code == 404
    assert call(env, "GET", "/api/validation/items/999999/chips/after.png").status_code == 404


def test_enqueue_uses_each_runs_decision_rule(env: dict[str, Any]) -> None:
    """Without a threshold, a detection is uncertain relative to its own run's rule (max of the pixel threshold and
    the minimum object confidence)."""
    from amberwatch.store.models import Run

    run_id = publish_polygons(env["store"], env["settings"], "VALIDATION_20250901", datetime(2025, 9, 1, tzinfo=UTC),
                              FOOTPRINT, [square(i + 0.5) for i in range(2)])
    with env["store"].session() as s:
        run = s.get(Run, run_id)
        assert run is not None
        run.parameters = {"decision_rule": {"pixel_threshold": 0.7, "min_object_confidence": 0.75}}
    # the worker's hourly task (its body, with the deps the worker hands it; registered under its name)
    from types import SimpleNamespace

    from amberwatch.jobs.queue import make_queue
    from amberwatch.worker.loop import register_tasks
    from amberwatch.worker.tasks import WorkerDeps, enqueue_validation_periodic

    queue = make_queue(env["store"].url)
    register_tasks(queue)
    assert any(name.endswith("enqueue_validation_periodic") for name in queue.tasks)
    enqueue_validation_periodic(SimpleNamespace(  # type: ignore[arg-type]
        additional_context={"deps": WorkerDeps(env["store"], env["settings"])}), 0)
    with env["store"].session() as s:
        sources = s.scalars(select(ValidationItem.source).where(ValidationItem.site_id.in_(
            select(Detection.site_id).where(Detection.run_id == run_id)))).all()
    assert sorted(sources) == ["new_site", "new_site", "uncertain", "uncertain"]  # 0.8 is 0.05 from 0.75
    with env["store"].session() as s:
        ranks = s.scalars(select(ValidationItem.rank).join(Detection, Detection.id == ValidationItem.detection_id)
                          .where(Detection.run_id == run_id)).all()
    assert ranks == pytest.approx([0.05, 0.05])
