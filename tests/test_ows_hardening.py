"""Hostile requests against /ows (MapServer) and /ogcapi (pygeoapi), served for real (uvicorn, mapserv, PostGIS).

* WMS ``SLD=<url>`` (any case, %-encoded, in a POST form) and ``CONTEXT=`` are refused and nothing connects to
  the URL: a real loopback listener counts connections. mapserv itself, called directly with the proxy's
  environment, does not connect either (dead proxy, ``sld_external_graphic`` validation).
* ``SLD_BODY`` still styles a GetMap; one that references something external is refused.
* OGC API Features: out-of-range offsets/limits, non-integer item ids, NUL bytes, values the column type cannot
  hold get 4xx with a JSON message and no internals; an exception inside pygeoapi is a clean 500.
* Error answers on a keep-alive connection leave the connection usable (one socket for all requests).
* MapServer error text reaches clients without server paths or database details.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import Listener, free_port
from geoalchemy2.shape import from_shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from publish_helpers import MAPSERV, Server, publish_settings, serve
from shapely.geometry import MultiPolygon, box
from sqlalchemy import delete

from amberwatch.publish import refresh
from amberwatch.publish.ogcapi import load_files
from amberwatch.publish.ows import DEAD_PROXY, check_request, scrub_error_text
from amberwatch.publish.service import _mounted
from amberwatch.store.db import Store
from amberwatch.store.models import ProtectedArea

# A corner no other test uses (north of Rivne oblast).
X0, Y0, SIZE = 26.905, 51.905, 0.01
BBOX_130 = f"{Y0 - 0.005},{X0 - 0.005},{Y0 + SIZE + 0.005},{X0 + SIZE + 0.005}"  # WMS 1.3.0 EPSG:4326: lat,lon
SOURCE = "test_ows_hardening"


@pytest.fixture(scope="module")
def area(store: Store) -> Iterator[int]:
    with store.session() as s:
        pa = ProtectedArea(name="Hardening test reserve", category="test", code="T1", source=SOURCE,
                           geom=from_shape(MultiPolygon([box(X0, Y0, X0 + SIZE, Y0 + SIZE)]), srid=4326))
        s.add(pa)
        s.flush()
        pid = pa.id
    yield pid
    with store.session() as s:
        s.execute(delete(ProtectedArea).where(ProtectedArea.source == SOURCE))


@pytest.fixture(scope="module")
def server(store: Store, area: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(store, publish_settings(store, tmp_path_factory.mktemp("hardening"))) as srv:
        yield srv


def request(server: Server, method: str, target: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def getmap_query(**extra: str) -> str:
    params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "protected_areas",
              "STYLES": "", "CRS": "EPSG:4326", "BBOX": BBOX_130, "WIDTH": "64", "HEIGHT": "64",
              "FORMAT": "image/png", **extra}
    return urllib.parse.urlencode(params)


# -- SLD= and other remote references ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["SLD", "sld", "Sld", "%53LD", "%73ld"])
def test_wms_sld_url_refused_without_connection(server: Server, listener: Listener, name: str):
    url = urllib.parse.quote(f"http://127.0.0.1:{listener.port}/x.sld", safe="")
    status, headers, body = request(server, "GET", f"/ows?{getmap_query()}&{name}={url}")
    assert status == 400, body[:300]
    assert "xml" in headers["content-type"] and b"ExceptionReport" in body and b"SLD_BODY" in body
    assert str(listener.port).encode() not in body
    assert listener.connections == 0


def test_sld_in_post_form_and_context_refused(server: Server, listener: Listener):
    url = f"http://127.0.0.1:{listener.port}/x"
    form = f"{getmap_query()}&sld={urllib.parse.quote(url, safe='')}".encode()
    status, _, body = request(server, "POST", "/ows", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and b"SLD" in body
    status, _, body = request(server, "GET", f"/ows?{getmap_query(CONTEXT=url)}")
    assert status == 400 and b"CONTEXT" in body
    assert listener.connections == 0


def test_xml_post_with_external_references_refused(server: Server, listener: Listener):
    url = f"http://127.0.0.1:{listener.port}/x"
    bodies = [
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "{url}">]><r>&e;</r>',
        f'<wfs:GetFeature xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'service="WFS" version="2.0.0"><wfs:Query typeNames="protected_areas" xlink:href="{url}"/>'
        "</wfs:GetFeature>",
        "<not-closed>",
    ]
    for xml in bodies:
        status, _, body = request(server, "POST", "/ows", xml.encode(), {"Content-Type": "text/xml"})
        assert status == 400, (xml, body[:300])
        assert b"ExceptionReport" in body
    assert listener.connections == 0


def test_xml_post_getfeature_still_works(server: Server, area: int):
    xml = ('<wfs:GetFeature xmlns:wfs="http://www.opengis.net/wfs/2.0" service="WFS" version="2.0.0" '
           'outputFormat="geojson"><wfs:Query typeNames="protected_areas"/></wfs:GetFeature>')
    status, _, body = request(server, "POST", "/ows", xml.encode(), {"Content-Type": "text/xml"})
    assert status == 200, body[:300]
    assert area in {f["properties"]["id"] for f in json.loads(body)["features"]}


RED_SLD = """<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld"
 xmlns:se="http://www.opengis.net/se"><NamedLayer><se:Name>protected_areas</se:Name><UserStyle><se:FeatureTypeStyle>
 <se:Rule><se:PolygonSymbolizer><se:Fill><se:SvgParameter name="fill">#ff0000</se:SvgParameter></se:Fill>
 </se:PolygonSymbolizer></se:Rule></se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>"""


def test_sld_body_still_renders(server: Server, area: int):
    status, headers, body = request(server, "GET", f"/ows?{getmap_query(SLD_BODY=RED_SLD)}")
    assert status == 200 and headers["content-type"] == "image/png", body[:300]
    img = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60) & (img[..., 3] > 200)
    assert red[24:40, 24:40].all() and not red[:8, :8].any()  # the reserve (the middle quarter) in the SLD colour
    status, _, body = request(server, "GET", f"/ows?{getmap_query()}")  # the mapfile's own style is not red
    plain = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
    assert not ((plain[..., 0] > 200) & (plain[..., 1] < 60) & (plain[..., 2] < 60))[24:40, 24:40].all()


def test_sld_body_with_external_graphic_refused(server: Server, listener: Listener):
    sld = RED_SLD.replace(
        "<se:Fill>",
        f'<se:Fill><se:GraphicFill><se:Graphic><se:ExternalGraphic><se:OnlineResource '
        f'xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="http://127.0.0.1:{listener.port}/p.png"/>'
        "<se:Format>image/png</se:Format></se:ExternalGraphic></se:Graphic></se:GraphicFill>",
    )
    status, _, body = request(server, "GET", f"/ows?{getmap_query(SLD_BODY=sld)}")
    assert status == 400 and b"SLD_BODY" in body
    assert listener.connections == 0


def _mapserv_direct(server: Server, query: str) -> bytes:
    """mapserv run as the proxy runs it (same config, dead proxy), but without the proxy's parameter checks."""
    env = {"PATH": os.environ.get("PATH", ""), "MAPSERVER_CONFIG_FILE": str(server.state.paths.mapserver_config),
           "REQUEST_METHOD": "GET", "QUERY_STRING": query,
           **{k: DEAD_PROXY for k in ("http_proxy", "https_proxy", "ALL_PROXY")}}
    assert MAPSERV is not None
    return subprocess.run([MAPSERV], env=env, capture_output=True, timeout=60).stdout


def test_mapserv_itself_fetches_nothing(server: Server, listener: Listener):
    """Defence in depth: the mapfile and mapserv's environment stop remote fetches the proxy would let through."""
    url = f"http://127.0.0.1:{listener.port}/x.sld"
    out = _mapserv_direct(server, f"{getmap_query()}&SLD={urllib.parse.quote(url, safe='')}")
    assert b"ServiceException" in out
    sld = RED_SLD.replace(
        "<se:Fill>",
        f'<se:Fill><se:GraphicFill><se:Graphic><se:ExternalGraphic><se:OnlineResource '
        f'xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="http://127.0.0.1:{listener.port}/p.png"/>'
        "<se:Format>image/png</se:Format></se:ExternalGraphic></se:Graphic></se:GraphicFill>",
    )
    _mapserv_direct(server, getmap_query(SLD_BODY=sld))
    assert listener.connections == 0


def test_check_request_unit():
    refused = ["SLD=x", "sld=x", "%53%4cD=x", "Context=x", "a=%00", "SLD_BODY=%3C!DOCTYPE",
               "SLD_BODY=%3CRemoteOWS%3E", "SERVICE=wcs&REQUEST=GetCapabilities", "service=SOS"]
    for query in refused:
        with pytest.raises(ValueError):
            check_request(query, "GET", b"")
    check_request(getmap_query(SLD_BODY=RED_SLD), "GET", b"")
    check_request("", "POST", b'<GetFeature xmlns="http://www.opengis.net/wfs/2.0"/>')


# -- leaks ------------------------------------------------------------------------------------------------------

def test_scrub_error_text():
    text = scrub_error_text(
        "msLoadMap(): Unable to access file. (/root/aw/data/ogc/amberwatch.map)\n"
        'msPostGISLayerOpen(): Query error. connection to server at "10.0.0.5", port 5432 failed: '
        "password authentication failed for user \"aw\"</ServiceException>\n"
        'xsi:schemaLocation="http://www.opengis.net/ogc http://schemas.opengis.net/wms/1.3.0/exceptions.xsd"\n'
        "host=db port=5432 dbname=aw user=aw password='s3cret'"
    )
    assert "/root" not in text and "amberwatch.map" not in text
    assert "10.0.0.5" not in text and "s3cret" not in text and "5432" not in text
    assert "http://schemas.opengis.net/wms/1.3.0/exceptions.xsd" in text  # URLs stay


def test_mapserv_error_has_no_server_path(server: Server):
    """A real MapServer error that names a file (the mapfile is gone) reaches the client without the path."""
    mapfile = server.state.paths.mapfile
    hidden = mapfile.with_name("moved-away.map")
    mapfile.rename(hidden)
    try:
        status, _, body = request(server, "GET", "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")
    finally:
        hidden.rename(mapfile)
    assert body, status
    assert str(server.state.paths.root).encode() not in body and b"amberwatch.map" not in body
    assert b"/tmp/" not in body and b"/root/" not in body
    assert b"SUPPORTS=" not in body  # nor MapServer's build banner


# -- OGC API Features -------------------------------------------------------------------------------------------

HOSTILE_OAPIF = [
    "/ogcapi/collections/protected_areas/items?offset=1e29",
    "/ogcapi/collections/protected_areas/items?offset=99999999999999999999",
    "/ogcapi/collections/protected_areas/items?offset=-1",
    "/ogcapi/collections/protected_areas/items?limit=1e29",
    "/ogcapi/collections/protected_areas/items?limit=99999999999999999999",
    "/ogcapi/collections/protected_areas/items?limit=0",
    "/ogcapi/collections/protected_areas/items?limit=%00",
    "/ogcapi/collections/protected_areas/items?f=json%00",
    "/ogcapi/collections/protected_areas/items?%00=1",
    "/ogcapi/collections/protected_areas/items?id=abc",
    "/ogcapi/collections/protected_areas/items?id=99999999999999999999",
    "/ogcapi/collections/mining_sites/items?area_ha=abc",
    "/ogcapi/collections/mining_sites/items?first_seen=not-a-date",
    "/ogcapi/collections/mining_sites/items?datetime=2020-13-45",
    "/ogcapi/collections/mining_sites/items?bbox=1,2,3",
    "/ogcapi/collections/mining_sites/items?filter=xx((",
    "/ogcapi/collections/mining_sites/items?sortby=",
    "/ogcapi/collections/mining_sites/items?filter=first_seen%3D5",
    "/ogcapi/collections/mining_sites/items?filter=site_id%3D'abc'",
    "/ogcapi/collections/mining_sites/items?filter=site_id%20IN%20('a','b')",
    "/ogcapi/collections/mining_sites/items?filter=site_id%20%3D%20TIMESTAMP('2020-01-01T00:00:00Z')",
    "/ogcapi/collections/mining_sites/items?filter=geom%20%3D%20'x'",
    "/ogcapi/collections/oblasts/items?datetime=",
    "/ogcapi/collections/mining_sites/items?filter=site_id%20%3C%20true",
    "/ogcapi/collections/protected_areas/items?datetime=2020-01-01",
    "/ogcapi/collections/mining_sites/items?sortby=site_id,",
    "/ogcapi/collections/mining_sites/items?sortby=-",
    "/ogcapi/collections/mining_sites/items/abc",
    "/ogcapi/collections/mining_sites/items/99999999999999999999",
    "/ogcapi/collections/mining_sites/items/1.5",
    "/ogcapi/collections/detections/items/abc",
    "/ogcapi/collections/mining_sites/items/%00",
    "/ogcapi/collections/no_such/items/abc",
]


@pytest.mark.parametrize("target", HOSTILE_OAPIF)
def test_oapif_hostile_requests_are_4xx(server: Server, target: str):
    status, _, body = request(server, "GET", target)
    assert 400 <= status < 500, (status, body[:300])
    text = body.decode(errors="replace")
    for leak in ("Traceback", "psycopg", "sqlalchemy", "SELECT", str(server.settings.data_dir), "/tmp/"):
        assert leak not in text, (leak, text[:300])
    assert json.loads(body)["description"]


def test_oapif_valid_requests_still_work(server: Server, area: int):
    status, _, body = request(server, "GET", f"/ogcapi/collections/protected_areas/items/{area}?f=json")
    assert status == 200 and json.loads(body)["id"] == area
    status, _, body = request(server, "GET", "/ogcapi/collections/protected_areas/items?f=json&limit=5&offset=0")
    assert status == 200 and json.loads(body)["type"] == "FeatureCollection"
    status, _, body = request(server, "GET", "/ogcapi/collections/protected_areas/items?f=json&sortby=-id,%2Bname")
    assert status == 200, body[:300]


# -- keep-alive after error answers -----------------------------------------------------------------------------

def test_error_answers_keep_the_connection_usable(server: Server, monkeypatch: pytest.MonkeyPatch):
    """All on one keep-alive connection: 4xx answers and an exception inside pygeoapi (a clean JSON 500)."""
    from pygeoapi import api as core_api

    def broken(*_args, **_kwargs):
        raise RuntimeError("/secret/path broke")

    monkeypatch.setattr(core_api, "conformance", broken)
    app = next(a for a in _mounted if a.config_path == server.state.paths.pygeoapi_config)
    config, openapi = load_files(app.config_path, app.openapi_path)
    app.swap(config, openapi)  # rebuilt routes pick up the broken function
    try:
        host, port = server.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        answers = []
        sockets = set()
        for target in ["/ogcapi/collections/mining_sites/items/abc",
                       "/ogcapi/conformance?f=json",
                       "/ogcapi/collections/mining_sites/items?area_ha=abc",
                       f"/ows?{getmap_query(SLD='http://127.0.0.1:1/x')}",
                       "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=nope",
                       "/ogcapi/collections?f=json"]:
            conn.request("GET", target)
            resp = conn.getresponse()
            body = resp.read()
            sockets.add(id(conn.sock))
            answers.append((resp.status, body))
            assert resp.getheader("connection", "").lower() != "close", target
        conn.close()
    finally:
        monkeypatch.undo()
        app.swap(config, openapi)
    statuses = [status for status, _ in answers]
    assert statuses[:4] == [404, 500, 400, 400] and statuses[4] < 500 and statuses[5] == 200, answers
    assert answers[1][0] == 500 and b"/secret" not in answers[1][1] and b"RuntimeError" not in answers[1][1]
    assert len(sockets) == 1  # never reconnected


def test_refresh_keeps_id_types(server: Server, store: Store):
    state = refresh(store, server.settings)
    config = yaml.safe_load(state.paths.pygeoapi_config.read_text())
    assert config["amberwatch"]["id_types"]["mining_sites"] in ("integer", "bigint")
    assert config["amberwatch"]["id_types"]["detections"] in ("integer", "bigint")


# -- production front: nginx + mapserv FastCGI (infra/nginx/amberwatch.conf.template) ---------------------------

REPO_INFRA = Path(__file__).resolve().parents[1] / "infra"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _render_nginx(run_dir: Path, server: Server, listen_port: int, checks: bool = True) -> Path:
    text = (REPO_INFRA / "nginx" / "amberwatch.conf.template").read_text()
    values = {
        "AW_NGINX_USER": "user root;" if os.geteuid() == 0 else "", "AW_RUN_DIR": str(run_dir),
        "AW_MAX_UPLOAD_MB": "10", "AW_APP_HOST": "127.0.0.1", "AW_APP_PORT": server.url.rsplit(":", 1)[1],
        "AW_LISTEN": f"127.0.0.1:{listen_port}", "AW_OGC_DIR": str(server.state.paths.root),
    }
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    if not checks:  # only the dead proxy is left between a client's SLD URL and mapserv
        text = re.sub(r"\n\s*if \(\$args[^\n]*\n[^\n]*\n\s*}", "", text)
        assert "if ($args" not in text
    conf = run_dir / ("nginx.conf" if checks else "nginx-nochecks.conf")
    conf.write_text(text)
    return conf


def _fetch(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


@contextmanager
def _nginx(run_dir: Path, conf: Path, port: int) -> Iterator[str]:
    assert NGINX is not None
    proc = subprocess.Popen([NGINX, "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"nginx did not start: {err}") from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fastcgi(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """mapserv FastCGI workers (infra/mapserver/spawn-mapserv.sh) for the module's published configs."""
    if NGINX is None or not shutil.which("spawn-fcgi"):
        pytest.skip("nginx / spawn-fcgi not installed (apt-get install nginx-light spawn-fcgi)")
    run_dir = tmp_path_factory.mktemp("nginx")
    for sub in ("log", "nginx"):
        (run_dir / sub).mkdir()
    sock = run_dir / "mapserv.sock"
    env = {**os.environ, "MAPSERV": MAPSERV or "mapserv"}
    subprocess.run([str(REPO_INFRA / "mapserver" / "spawn-mapserv.sh"), str(server.state.paths.root), str(sock), "1"],
                   check=True, capture_output=True, env=env, timeout=30)
    pids = [int(p) for p in (run_dir / "mapserv.pid").read_text().split()]
    yield run_dir
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):  # an idle FastCGI mapserv ends on the 2nd TERM
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            break
        time.sleep(0.5)


def test_nginx_front_refuses_remote_references(server: Server, fastcgi: Path, listener: Listener, area: int):
    port = free_port()
    with _nginx(fastcgi, _render_nginx(fastcgi, server, port), port) as front:
        url = urllib.parse.quote(f"http://127.0.0.1:{listener.port}/x.sld", safe="")
        for name in ("SLD", "sld", "sLd", "%53LD", "+SLD", "CONTEXT"):
            status, ctype, body = _fetch(f"{front}/ows?{getmap_query()}&{name}={url}")
            assert status == 400 and "xml" in ctype and b"ExceptionReport" in body, (name, status, body[:200])
        external = RED_SLD.replace("<se:Fill>", "<se:Fill><se:ExternalGraphic/>")
        status, _, body = _fetch(f"{front}/ows?{getmap_query(SLD_BODY=external)}")
        assert status == 400, body[:200]
        # POSTs go through the app's checked proxy
        form = f"{getmap_query()}&SLD={url}".encode()
        status, _, body = _fetch(f"{front}/ows", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 400 and b"SLD" in body, body[:200]
        # what clients need still works through the FastCGI workers
        status, ctype, body = _fetch(f"{front}/ows?{getmap_query(SLD_BODY=RED_SLD)}")
        assert status == 200 and ctype == "image/png", body[:200]
        status, _, body = _fetch(f"{front}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities")
        assert status == 200 and b"protected_areas" in body
        status, _, body = _fetch(f"{front}/ows?service=wcs&REQUEST=GetCapabilities")
        assert status == 400 and b"WMS and WFS only" in body
    assert listener.connections == 0


def test_nginx_dead_proxy_alone_stops_the_fetch(server: Server, fastcgi: Path, listener: Listener):
    """Without nginx's parameter checks, mapserv (FastCGI) gets the SLD URL: the dead http_proxy stops it."""
    port = free_port()
    with _nginx(fastcgi, _render_nginx(fastcgi, server, port, checks=False), port) as front:
        url = urllib.parse.quote(f"http://127.0.0.1:{listener.port}/x.sld", safe="")
        status, _, body = _fetch(f"{front}/ows?{getmap_query()}&SLD={url}")
        assert b"ServiceException" in body, body[:300]
    assert listener.connections == 0


# -- /ows fuzzing: OGC parameters with hostile values -----------------------------------------------------------

_OWS_NAMES = ["VERSION", "LAYERS", "LAYER", "STYLES", "CRS", "SRS", "BBOX", "WIDTH", "HEIGHT", "FORMAT", "TIME",
              "TRANSPARENT", "BGCOLOR", "EXCEPTIONS", "SLD_BODY", "SLD_VERSION", "QUERY_LAYERS", "I", "J", "X", "Y",
              "INFO_FORMAT", "FEATURE_COUNT", "TYPENAMES", "TYPENAME", "OUTPUTFORMAT", "COUNT", "STARTINDEX",
              "FILTER", "RESOURCEID", "SORTBY", "PROPERTYNAME", "SRSNAME", "STOREDQUERY_ID", "ID", "mode", "qlayer",
              "map.extent", "map_size", "template", "imgext", "FORMAT_OPTIONS", "DPI", "MAP_RESOLUTION"]
_OWS_VALUES = ["", "0", "-1", "1e309", "nan", "99999999999999999999", "../../etc/passwd", "/etc/passwd",
               "mining_sites", "protected_areas,mining_sites", "EPSG:4326", "EPSG:999999", BBOX_130, "1,2,3",
               "image/png", "application/json; subtype=geojson", "text/html", "geojson", "browse", "map", "query",
               "%s%n", "'; select 1; --", "<x>", "2019-01-01/2030-01-01", "4096", "100000"]


@given(
    service=st.sampled_from(["WMS", "WFS", "WCS", "SOS", "", "OGCAPI"]),
    req=st.sampled_from(["GetCapabilities", "GetMap", "GetFeatureInfo", "GetLegendGraphic", "GetFeature",
                         "DescribeFeatureType", "ListStoredQueries", "DescribeStoredQueries", "GetPropertyValue",
                         "GetStyles", "DescribeLayer", "GetCoverage", "x"]),
    extra=st.dictionaries(st.sampled_from(_OWS_NAMES),
                          st.one_of(st.sampled_from(_OWS_VALUES), st.text(max_size=30)), max_size=6),
)
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_ows_fuzz_no_server_error_no_leak(server: Server, service: str, req: str, extra: dict[str, str]):
    query = urllib.parse.urlencode({"SERVICE": service, "REQUEST": req, **extra})
    status, _, body = request(server, "GET", f"/ows?{query}")
    assert status < 500, (query, body[:300])
    for leak in (str(server.state.paths.root), "/tmp/", "/root/", "SUPPORTS=", "password"):
        assert leak.encode() not in body, (leak, query, body[:300])


def test_nginx_parallel_requests_do_not_pin_mapserv(server: Server, fastcgi: Path):
    """One mapserv worker, several nginx workers, 20 parallel requests: all answer (an idle kept-alive FastCGI
    connection used to pin the only mapserv and half of the requests hung)."""
    port = free_port()
    with _nginx(fastcgi, _render_nginx(fastcgi, server, port), port) as front:
        url = f"{front}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities"
        results: list[int | str] = []

        def call() -> None:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    results.append(r.status)
            except OSError as err:
                results.append(repr(err))

        for _ in range(2):  # a second wave reuses whatever the first left open
            threads = [threading.Thread(target=call) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert results == [200] * 40, results


# -- /ogcapi fuzzing: items parameters, property filters and CQL ------------------------------------------------

_PROPS = ["site_id", "id", "status", "area_ha", "first_seen", "confidence", "name", "in_protected_area", "geom", "x"]
_LITERALS = ["5", "-1", "1e400", "'x'", "''", "true", "NULL", "'2020-01-01'", "TIMESTAMP('2020-01-01T00:00:00Z')",
             "DATE('2020-13-45')", "POINT(1 2)", "99999999999999999999", "'%'"]
_OPERATORS = ["=", "<", ">", "<>", "LIKE", "IN", "BETWEEN", "IS", "AND"]
_CQL = st.builds(lambda p, op, lit: f"{p} {op} {lit}", st.sampled_from(_PROPS), st.sampled_from(_OPERATORS),
                 st.sampled_from(_LITERALS))
_OAPIF_VALUES = st.one_of(st.sampled_from(["", "0", "-1", "1e29", "abc", "1,2,3,4", "-180,-90,180,90", "json", "html",
                                            "2020-01-01/..", "../..", "+site_id,-status", ",", "true", "cql-text"]),
                          st.text(max_size=20), _CQL)


@given(
    collection=st.sampled_from(["mining_sites", "detections", "events", "site_history", "oblasts", "protected_areas"]),
    params=st.dictionaries(st.sampled_from(["offset", "limit", "bbox", "datetime", "sortby", "properties", "f",
                                            "skipGeometry", "filter", "filter-lang", "crs", "bbox-crs", "lang", "q",
                                            *_PROPS]),
                           _OAPIF_VALUES, max_size=5),
    cql=st.one_of(st.none(), _CQL),
)
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_oapif_fuzz_no_server_error_no_leak(server: Server, collection: str, params: dict[str, str],
                                            cql: str | None):
    query = urllib.parse.urlencode({**params, **({"filter": cql} if cql else {})})
    status, _, body = request(server, "GET", f"/ogcapi/collections/{collection}/items?{query}")
    assert status < 500, (query, body[:300])
    if status >= 400:
        for leak in ("Traceback", "psycopg", "sqlalchemy", "SELECT", "/tmp/", "/root/", "password"):
            assert leak.encode() not in body, (leak, query, body[:300])


def test_error_answers_keep_alive_httpx(server: Server):
    """The finding as reported: an httpx keep-alive client, an error answer, then the next request on the pool."""
    import httpx

    with httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=1), timeout=60) as client:
        for target in ["/ogcapi/collections/mining_sites/items/abc",
                       "/ogcapi/collections/mining_sites/items?offset=1e29",
                       "/ogcapi/collections/mining_sites/items?filter=first_seen%3D5",
                       f"/ows?{getmap_query(SLD='http://127.0.0.1:1/x')}"]:
            assert 400 <= client.get(target).status_code < 500, target
            assert client.get("/ogcapi/conformance?f=json").status_code == 200, target
