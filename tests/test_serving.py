"""/ows served by the supervised mapserv FastCGI pool (amberwatch.publish.fcgi): speed features and fallbacks.

* the pool starts on the first request with ``AMBERWATCH_MAPSERV_WORKERS`` workers; a killed worker is restarted
  and requests keep being answered;
* the security checks stay in front (SLD= refused, no connection made);
* ETag keyed on the published version, If-None-Match -> 304, a new refresh -> a new ETag;
* gzip for XML for clients that accept it;
* CGI per request with ``mapserv_workers=0`` or when the pool cannot start (logged).
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from publish_helpers import publish_settings

from amberwatch.publish import mount, refresh
from amberwatch.publish.fcgi import encode_params
from amberwatch.publish.ows import MapServerCGI
from amberwatch.settings import Settings
from amberwatch.store.db import Store

CAPS = "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities"
GETMAP = "/ows?" + urllib.parse.urlencode({
    "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "oblasts", "STYLES": "",
    "CRS": "EPSG:4326", "BBOX": "44,22,53,41", "WIDTH": "128", "HEIGHT": "96", "FORMAT": "image/png"})


@contextmanager
def running(store: Store, settings: Settings) -> Iterator[tuple[str, MapServerCGI]]:
    refresh(store, settings)
    app = FastAPI()
    mount(app, store, settings)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                       lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ows: MapServerCGI = app.state.ows
    try:
        yield f"127.0.0.1:{settings.port}", ows
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        ows.close()


def call(host: str, target: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*host.split(":"), timeout=60)
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pooled(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MapServerCGI, Settings]]:
    settings = publish_settings(store, tmp_path_factory.mktemp("serving"))
    assert settings.mapserv_workers == 2  # the default
    with running(store, settings) as (host, ows):
        yield host, ows, settings


def test_pool_answers_and_restarts_dead_workers(pooled):
    host, ows, _ = pooled
    status, headers, body = call(host, GETMAP)
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", body[:300]
    assert ows.mode == "fastcgi" and ows.pool is not None and len(ows.pool.pids) == 2
    victim = ows.pool.pids[0]
    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # answered throughout (by the other worker, the restarted one or CGI)
        assert call(host, GETMAP)[0] == 200
    deadline = time.monotonic() + 5
    while len(ows.pool.pids) < 2 or victim in ows.pool.pids:
        assert time.monotonic() < deadline, ows.pool.pids
        time.sleep(0.1)
    assert ows.pool.restarts >= 1


def test_security_checks_stay_in_front_of_the_pool(pooled):
    host, ows, _ = pooled
    status, _, body = call(host, GETMAP + "&SLD=" + urllib.parse.quote("http://127.0.0.1:1/x.sld"))
    assert status == 400 and b"does not fetch remote" in body
    status, _, body = call(host, GETMAP + "&CONTEXT=/etc/passwd")
    assert status == 400
    assert ows.mode == "fastcgi"


def test_etag_304_and_new_version_after_refresh(pooled, store: Store):
    host, _, settings = pooled
    status, headers, _ = call(host, CAPS)
    assert status == 200 and headers["etag"].startswith('W/"') and headers["cache-control"] == "no-cache"
    etag = headers["etag"]
    status, headers, body = call(host, CAPS, {"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["etag"] == etag
    assert call(host, GETMAP, {"If-None-Match": etag})[0] == 200  # another request, another ETag
    time.sleep(0.01)
    refresh(store, settings)
    status, headers, _ = call(host, CAPS, {"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag
    # errors carry no ETag
    status, headers, _ = call(host, "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=nope")
    assert "etag" not in headers


def test_gzip_for_xml(pooled):
    host, _, _ = pooled
    status, headers, plain = call(host, CAPS)
    assert status == 200 and "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
    status, headers, packed = call(host, CAPS, {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) / 3
    status, headers, png = call(host, GETMAP, {"Accept-Encoding": "gzip"})
    assert png[:4] == b"\x89PNG" and "content-encoding" not in headers


def test_cgi_when_workers_is_zero(store: Store, tmp_path: Path):
    settings = publish_settings(store, tmp_path).model_copy(update={"mapserv_workers": 0})
    with running(store, settings) as (host, ows):
        status, _, body = call(host, GETMAP)
        assert status == 200 and body[:4] == b"\x89PNG"
        assert ows.mode == "cgi" and ows.pool is None


def test_cgi_fallback_when_the_pool_cannot_start(store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    settings = publish_settings(store, tmp_path)
    with running(store, settings) as (host, ows):
        assert ows.pool is not None
        ows.pool.socket_path = tmp_path / ("x" * 120 + ".sock")  # too long for AF_UNIX: bind fails
        with caplog.at_level(logging.WARNING, logger="amberwatch.publish.ows"):
            status, _, body = call(host, GETMAP)
        assert status == 200 and body[:4] == b"\x89PNG"
        assert ows.mode == "cgi"
        assert "falls back to CGI" in caplog.text


def test_fastcgi_params_encoding():
    encoded = encode_params({"A": "b", "LONG": "x" * 200})
    assert encoded[:4] == b"\x01\x01Ab" and encoded[4:5] == b"\x04" and encoded[5:9] == (200 | 1 << 31).to_bytes(4)


# -- OGC API Features: no whole-table count on unfiltered pages (publish.pgprovider, count: filtered) -----------

@pytest.fixture(scope="module")
def three_areas(store: Store) -> Iterator[None]:
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box
    from sqlalchemy import delete

    from amberwatch.store.models import ProtectedArea

    with store.session() as s:
        for i in range(3):
            x = 27.6 + i * 0.01
            s.add(ProtectedArea(name=f"Serving test {i}", category="test", code=f"S{i}", source="test_serving",
                                geom=from_shape(MultiPolygon([box(x, 51.6, x + 0.005, 51.605)]), srid=4326)))
    yield
    with store.session() as s:
        s.execute(delete(ProtectedArea).where(ProtectedArea.source == "test_serving"))


@contextmanager
def statements() -> Iterator[list[str]]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_unfiltered_items_do_not_count_the_table(pooled, three_areas):
    import json

    host, _, _ = pooled
    base = "/ogcapi/collections/protected_areas/items?f=json"
    with statements() as seen:
        status, _, body = call(host, f"{base}&limit=2")
    page = json.loads(body)
    assert status == 200 and page["numberReturned"] == 2 and "numberMatched" not in page
    assert any(link["rel"] == "next" for link in page["links"])  # paging still works (the page is full)
    assert seen and not any("count(" in s.lower() for s in seen), seen
    # filtered requests and resulttype=hits still count
    with statements() as seen:
        status, _, body = call(host, f"{base}&bbox=27.59,51.59,27.63,51.61&limit=1")
    assert status == 200 and json.loads(body)["numberMatched"] == 3
    assert any("count(" in s.lower() for s in seen)
    status, _, body = call(host, f"{base}&resulttype=hits")
    assert status == 200 and json.loads(body)["numberMatched"] >= 3
