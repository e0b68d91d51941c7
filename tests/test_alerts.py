"""Alerts for an area (usecases/alerts.py, web/subscriptions.py): subscriptions through the API, the scan of a
published run, webhook deliveries signed with HMAC-SHA256 to a real receiver on loopback (the test allows private
addresses with AMBERWATCH_WEBHOOK_ALLOW_PRIVATE), retries, the job queue path, the Atom feed and unsubscribing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from publish_helpers import publish_polygons
from shapely.geometry import box, mapping
from sqlalchemy import text

from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import alerts

ORIGIN = (26.55, 51.72)  # Rivne oblast, the amber belt
INSIDE = box(ORIGIN[0] - 0.01, ORIGIN[1] - 0.01, ORIGIN[0] + 0.01, ORIGIN[1] + 0.01)  # the subscribed area
FAR = box(ORIGIN[0] + 0.3, ORIGIN[1] + 0.05, ORIGIN[0] + 0.31, ORIGIN[1] + 0.06)  # inside the scene, outside it
FOOTPRINT = box(ORIGIN[0] - 0.5, ORIGIN[1] - 0.2, ORIGIN[0] + 0.5, ORIGIN[1] + 0.2)


class Receiver:
    """A webhook receiver on loopback that checks each signature with the secret it is told, as a user would."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}  # path -> secret
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                secret = receiver.secrets.get(self.path, "")
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                header = self.headers.get("X-AmberWatch-Signature", "")
                receiver.received.append({"path": self.path, "body": body, "signature_ok":
                                          hmac.compare_digest(expected, header), "headers": dict(self.headers)})
                status = 200
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    status = 503
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from amberwatch.web.app import create_app

    tmp = tmp_path_factory.mktemp("alerts")
    settings = Settings(data_dir=tmp / "data", database_url=make_database("amberwatch_alerts"),
                        webhook_allow_private=True, rate_limit_subscriptions="8/minute")
    store = Store(settings).start()
    receiver = Receiver()
    app = create_app(settings, store, worker=False)
    with TestClient(app) as client:
        yield {"store": store, "settings": settings, "receiver": receiver, "client": client, "tmp": tmp}
    receiver.close()
    store.stop()


_n = iter(range(1, 10_000))


def publish(env: dict[str, Any], when: datetime, polygons: list[Any]) -> int:
    """A run published by the real use case (detections, sites, events)."""
    return publish_polygons(env["store"], env["settings"], f"ALERT_{when:%Y%m%d}_{next(_n)}", when, FOOTPRINT,
                            polygons)


def small_square(cx: float, cy: float, d: float = 0.0008) -> Any:
    return box(cx - d, cy - d, cx + d, cy + d)


def subscribe(env: dict[str, Any], path: str, **body: Any) -> dict[str, Any]:
    res = env["client"].post("/api/subscriptions", json={"webhook_url": env["receiver"].url + path, **body})
    assert res.status_code == 201, res.text
    out = res.json()
    env["receiver"].secrets[path] = out["secret"]
    return out


def test_signature_helpers() -> None:
    body = b'{"a":1}'
    sig = alerts.sign("whsec_x", body)
    assert sig == "sha256=" + hmac.new(b"whsec_x", body, hashlib.sha256).hexdigest()
    assert alerts.verify("whsec_x", body, sig) and not alerts.verify("whsec_y", body, sig)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.org/hook", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:pw@example.org/hook", "credentials"),
    ("http://127.0.0.1:9/hook", "non-public address"),
    ("http://localhost/hook", "non-public address"),
    ("http://10.1.2.3/hook", "non-public address"),
    ("http://169.254.169.254/latest/meta-data", "non-public address"),
    ("http://[::1]/hook", "non-public address"),
    ("http://[::ffff:127.0.0.1]/hook", "non-public address"),
    ("http://0.0.0.0/hook", "non-public address"),
    ("https://", "no host"),
])
def test_webhook_urls_refused(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        alerts.check_webhook_url(url, allow_private=False)


def test_public_address_allowed() -> None:
    target = alerts.check_webhook_url("https://93.184.215.14/hook", allow_private=False)
    assert target.addresses == ("93.184.215.14",) and target.port == 443


def test_delivery_inside_the_area_only(env: dict[str, Any]) -> None:
    """A new event inside the subscribed polygon gives one signed delivery; an event outside gives none."""
    receiver, store, settings = env["receiver"], env["store"], env["settings"]
    publish(env, datetime(2018, 6, 1, tzinfo=UTC), [small_square(ORIGIN[0] + 0.2, ORIGIN[1])])  # before: not sent
    alerts.scan(store, settings)
    inside = subscribe(env, "/inside", area=mapping(INSIDE))
    far = subscribe(env, "/far", area={"type": "Feature", "properties": {}, "geometry": mapping(FAR)})
    assert inside["id"].startswith("sub_") and inside["area_kind"] == "polygon"
    assert inside["feed_url"].endswith(f"/api/subscriptions/{inside['id']}/events.atom")
    # a run with one site inside the first area and one elsewhere (outside both)
    run_id = publish(env, datetime(2019, 6, 1, tzinfo=UTC),
                     [small_square(*ORIGIN), small_square(ORIGIN[0] - 0.3, ORIGIN[1] - 0.1)])
    ids = alerts.scan(store, settings)
    assert len(ids) == 1
    assert alerts.scan(store, settings) == []  # a run is scanned once
    assert alerts.deliver(store, settings, ids[0]) == "delivered"
    assert alerts.deliver(store, settings, ids[0]) == "delivered"  # idempotent: not sent again
    got = [r for r in receiver.received if r["path"] in ("/inside", "/far")]
    assert len(got) == 1 and got[0]["path"] == "/inside" and got[0]["signature_ok"]
    assert got[0]["headers"]["X-AmberWatch-Delivery"] == str(ids[0])
    payload = json.loads(got[0]["body"])
    assert payload["subscription_id"] == inside["id"] and payload["run_id"] == run_id
    assert [e["to_status"] for e in payload["events"]] == ["new"]
    e = payload["events"][0]
    assert INSIDE.contains(box(e["lon"], e["lat"], e["lon"], e["lat"]).centroid)
    assert e["site_url"].endswith(f"/sites/{e['site_id']}")
    # the Atom feed of the area has that event; the far area's feed has none
    feed = env["client"].get(f"/api/subscriptions/{inside['id']}/events.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert feed.text.count("<entry>") == 1 and f"Site {e['site_id']}: new site" in feed.text
    assert env["client"].get(f"/api/subscriptions/{far['id']}/events.atom").text.count("<entry>") == 0
    info = env["client"].get(f"/api/subscriptions/{inside['id']}").json()
    assert info["area"]["type"] == "MultiPolygon" and "secret" not in info and "webhook_url" not in info


def test_retries_then_delivered_and_unsubscribe(env: dict[str, Any]) -> None:
    receiver, store, settings = env["receiver"], env["store"], env["settings"]
    sub = subscribe(env, "/retry", area=mapping(box(ORIGIN[0] + 0.1, ORIGIN[1] - 0.01,
                                                    ORIGIN[0] + 0.12, ORIGIN[1] + 0.01)))
    publish(env, datetime(2020, 6, 1, tzinfo=UTC), [small_square(ORIGIN[0] + 0.11, ORIGIN[1])])
    alerts.scan(store, settings)  # the site of the first test, unseen in this run, is an event in /inside too
    (delivery_id,) = [d["id"] for d in alerts.deliveries(store, sub["id"])]
    receiver.fail_next = 1
    with pytest.raises(alerts.DeliveryFailed, match="HTTP 503"):
        alerts.deliver(store, settings, delivery_id)
    assert alerts.deliver(store, settings, delivery_id) == "delivered"
    sent = [r for r in receiver.received if r["path"] == "/retry"]
    assert len(sent) == 2 and sent[0]["body"] == sent[1]["body"] and all(r["signature_ok"] for r in sent)
    assert [d["attempts"] for d in alerts.deliveries(store, sub["id"])] == [2]
    client = env["client"]
    assert client.delete(f"/api/subscriptions/{sub['id']}", params={"token": "unsub_wrong"}).status_code == 403
    assert client.delete(f"/api/subscriptions/{sub['id']}", params={"token": sub["unsubscribe_token"]}
                         ).status_code == 204
    assert client.get(f"/api/subscriptions/{sub['id']}").status_code == 404
    publish(env, datetime(2021, 6, 1, tzinfo=UTC), [small_square(ORIGIN[0] + 0.115, ORIGIN[1] + 0.005)])
    assert all(d["subscription_id"] != sub["id"] for d in _pending(store))


UNIT = box(ORIGIN[0] - 0.2, ORIGIN[1] + 0.1, ORIGIN[0] - 0.1, ORIGIN[1] + 0.15)  # the hromada Висоцька


def load_hromada(env: dict[str, Any]) -> None:
    """The hromada layer: Висоцька (UNIT) only."""
    from amberwatch.usecases.monitoring import load_layer_files

    path = Path(env["tmp"]) / "hromadas.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"shapeName": "Висоцька"}, "geometry": mapping(UNIT)}]}))
    load_layer_files(env["store"], "hromada", [path])


@pytest.fixture(scope="module")
def read_data(env: dict[str, Any]) -> dict[str, Any]:
    """What the read tests below need whichever tests ran before: the hromada layer and a published run with a site
    inside Висоцька and one outside every hromada."""
    load_hromada(env)
    publish(env, datetime(2023, 6, 1, tzinfo=UTC),
            [small_square(ORIGIN[0] - 0.16, ORIGIN[1] + 0.13), small_square(ORIGIN[0] + 0.21, ORIGIN[1] + 0.01)])
    return env


def _pending(store: Store) -> list[dict[str, Any]]:
    alerts.scan(store, Settings(database_url=store.url))
    with store.session() as s:
        return [dict(r) for r in s.execute(text("select subscription_id from alert_deliveries "
                                                "where state = 'pending'")).mappings()]


def test_through_the_job_queue_with_an_admin_unit(env: dict[str, Any]) -> None:
    """The worker path: scan_alerts finds the run and queues deliver_alert, which POSTs the signed body."""
    from amberwatch.jobs.queue import QUEUE, make_queue
    from amberwatch.worker.loop import run_worker

    store, settings, receiver = env["store"], env["settings"], env["receiver"]
    load_hromada(env)
    assert env["client"].post("/api/subscriptions", json={
        "webhook_url": receiver.url + "/unit", "admin": {"kind": "hromada", "name": "Нема такої"}}).status_code == 404
    sub = subscribe(env, "/unit", admin={"kind": "hromada", "name": "висоцька"})
    assert (sub["area_kind"], sub["area_name"]) == ("hromada", "Висоцька")
    publish(env, datetime(2022, 6, 1, tzinfo=UTC), [small_square(ORIGIN[0] - 0.15, ORIGIN[1] + 0.12)])

    async def work() -> None:
        queue = make_queue(store.url)
        async with queue.open_async():
            # the periodic job (a sync task) queues scan_alerts, which queues deliver_alert
            await queue.configure_task("amberwatch:scan_alerts_periodic", queue=QUEUE).defer_async(timestamp=0)
            for _ in range(3):  # each pass runs what the one before queued
                await run_worker(queue, store, settings, wait=False, concurrency=1)

    asyncio.run(work())
    sent = [r for r in receiver.received if r["path"] == "/unit"]
    assert len(sent) == 1 and sent[0]["signature_ok"]
    assert json.loads(sent[0]["body"])["events"][0]["hromada"] == "Висоцька"


def test_bad_subscriptions_and_rate_limit(env: dict[str, Any]) -> None:
    client, url = env["client"], env["receiver"].url
    client.app.state.subscription_limiter = None  # a fresh window of 8 per minute
    bad = [
        ({"webhook_url": "http://user:pw@example.org/", "area": mapping(INSIDE)}, 400, "credentials"),
        ({"webhook_url": url, "area": {"type": "Point", "coordinates": [1, 2]}}, 400, "Polygon"),
        ({"webhook_url": url, "area": mapping(box(500, 0, 501, 1))}, 400, "longitude/latitude"),
        ({"webhook_url": url, "area": mapping(box(20, 45, 40, 55))}, 400, "at most"),
        ({"webhook_url": url}, 400, "either area"),
        ({"webhook_url": url, "area": mapping(INSIDE), "statuses": ["gone"]}, 400, "statuses"),
    ]
    for body, status, message in bad:
        res = client.post("/api/subscriptions", json=body)
        assert res.status_code == status and message in res.json()["detail"], (body, res.text)
    answers = [client.post("/api/subscriptions", json={"webhook_url": url + "/x", "area": mapping(INSIDE)})
               for _ in range(3)]
    assert [r.status_code for r in answers] == [201, 201, 429]  # refused requests count too
    assert int(answers[-1].headers["retry-after"]) >= 1


@pytest.mark.parametrize("path", ["/api/sites", "/api/events", "/api/stats?by=hromada", "/api/sites/{id}"])
def test_api_etags(read_data: dict[str, Any], path: str) -> None:
    """GET JSON of the API carries an ETag; If-None-Match with it is a 304 without body; a change is a new tag."""
    client = read_data["client"]
    site_id = client.get("/api/sites").json()["features"][0]["id"]
    url = path.format(id=site_id)
    first = client.get(url)
    assert first.status_code == 200 and first.headers["etag"].startswith('"')
    tag = first.headers["etag"]
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert client.get(url, headers={"If-None-Match": f'"other", W/{tag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    if path == "/api/sites":
        assert client.get(url + "?limit=1", headers={"If-None-Match": tag}).status_code == 200  # other content
    assert "etag" not in client.get("/api/sites/999999").headers  # errors carry none


def test_stats_by_hromada(read_data: dict[str, Any]) -> None:
    env = read_data
    stats = env["client"].get("/api/stats?by=hromada").json()
    assert stats["by"] == "hromada"
    names = {g["hromada"] for g in stats["groups"]}
    assert "Висоцька" in names and "(unknown)" in names
    assert sum(g["sites"] for g in stats["groups"]) == stats["total"]["sites"]
    assert abs(sum(g["disturbed_area_ha"] for g in stats["groups"]) - stats["total"]["disturbed_area_ha"]) < 1e-3
    csv = env["client"].get("/api/stats?by=hromada&format=csv")
    assert csv.status_code == 200 and csv.text.startswith("hromada,sites,")
    report = env["client"].get("/api/reports/area.html?unit=hromada&lang=uk")
    assert report.status_code == 200 and "Висоцька" in report.text and "Громада" in report.text
