"""``/ows``: WMS 1.3.0 / WFS 2.0 answered by MapServer's ``mapserv``: a pool of FastCGI workers that the service
starts and supervises (:mod:`amberwatch.publish.fcgi`, ``AMBERWATCH_MAPSERV_WORKERS``, default 2), or a CGI
subprocess per request when the pool cannot run (``AMBERWATCH_MAPSERV_WORKERS=0``, no FastCGI support; logged).

The map alias is injected here: clients call ``/ows?SERVICE=WMS&REQUEST=GetCapabilities`` and never see or
choose a mapfile (any ``map=`` they send is dropped; the config file also allows the alias only).
Both paths get the same checks below, the same environment and the same answer handling.

HTTP: GET answers carry a weak ETag keyed on the published version (the ``published-version`` file that
``refresh`` writes: latest published run id, plus the mapfile's mtime) and the request, with ``Cache-Control:
no-cache``; ``If-None-Match`` gets a 304 without running mapserv. XML/GML/JSON answers are gzipped for clients that
accept it.

Hardening (server-side request forgery and information leaks):

* parameters that make MapServer fetch a URL or open a file (``SLD=<url>``, ``CONTEXT=``) are refused with an OGC
  exception (400), in the query string and in form-encoded POST bodies, whatever their case or %-encoding;
  ``SLD_BODY`` keeps working unless it references anything external (``ExternalGraphic``, ``OnlineResource``,
  ``RemoteOWS``, ``xlink:href``, a DTD or entity); XML POST bodies get the same check (defusedxml);
* mapserv runs with a dead HTTP proxy in its environment, so a fetch that slipped through connects nowhere;
* error answers are scrubbed: no absolute server paths, no database connection details or SQL.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qsl
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml_safely
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from amberwatch.httpcache import etag_matches
from amberwatch.publish.fcgi import FastCGIError, MapServerPool

log = logging.getLogger(__name__)

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PROJ_DATA", "PROJ_LIB", "GDAL_DATA")
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}

# libcurl (MapServer's HTTP client) reads these from the environment: a proxy on port 0 fails at once, connecting
# to nothing, so no URL that reaches mapserv can be fetched (defence in depth behind the parameter checks).
DEAD_PROXY = "http://0.0.0.0:0"
_PROXY_ENV = {name: DEAD_PROXY for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")}

# KVP parameters MapServer resolves by fetching a URL or reading a file (SLD=<url>, CONTEXT=<url or file>).
REFUSED_PARAMS = frozenset({"sld", "context"})
# MapServer services not offered (the mapfile turns their requests off; WCS would still list its capabilities)
OFF_SERVICES = frozenset({"WCS", "SOS"})
# SLD / XML content that references something outside the document.
_EXTERNAL_SLD = re.compile(
    r"<!DOCTYPE|<!ENTITY|ExternalGraphic|OnlineResource|RemoteOWS|href\s*=|XInclude|<\?xml-stylesheet", re.I
)
_EXTERNAL_TAGS = frozenset({"ExternalGraphic", "OnlineResource", "RemoteOWS", "include"})


class RefusedRequest(ValueError):
    """A request the proxy does not hand to mapserv (answered with an OGC exception, 400)."""


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def check_params(pairs: list[tuple[str, str]]) -> None:
    """Refuse remote-reference parameters; ``pairs`` are decoded (name, value) pairs."""
    for name, value in pairs:
        key = name.strip().lower()
        if key in REFUSED_PARAMS:
            hint = " Send the style inline with SLD_BODY." if key == "sld" else ""
            raise RefusedRequest(
                f"Parameter {name.strip().upper()} is not supported here: this server does not fetch remote "
                f"resources.{hint}"
            )
        if key == "sld_body" and _EXTERNAL_SLD.search(value):
            raise RefusedRequest(
                "SLD_BODY must be self-contained: ExternalGraphic, OnlineResource, RemoteOWS, xlink:href, "
                "DTDs and entities are not supported."
            )
        if key == "service" and value.strip().upper() in OFF_SERVICES:
            raise RefusedRequest("This endpoint serves WMS and WFS only.")
        if "\x00" in name or "\x00" in value:
            raise RefusedRequest("NUL characters are not allowed in parameters.")


def check_xml_body(body: bytes) -> None:
    """An XML POST (WFS GetFeature, ...) must be well formed, without DTD/entities and external references."""
    try:
        root = parse_xml_safely(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise RefusedRequest("XML with a DTD, entities or external references is not supported.") from err
    except ParseError as err:
        raise RefusedRequest(f"The request body is not well-formed XML ({err}).") from err
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if _local(element.tag) in _EXTERNAL_TAGS or any(_local(a) == "href" for a in element.attrib):
            raise RefusedRequest(
                f"<{_local(element.tag)}> references an external resource: this server does not fetch remote "
                "resources."
            )
        for name, value in element.attrib.items():
            check_params([(_local(name), value)])


def check_request(query: str, method: str, body: bytes) -> None:
    """Raise :class:`RefusedRequest` for a request mapserv must not see (remote references, NUL bytes)."""
    # decoded as MapServer sees them: "+" is a space, %-escapes in names too, "a" alone is ("a", "")
    check_params(parse_qsl(query, keep_blank_values=True, errors="replace"))
    if method == "POST" and body.strip():
        if body.lstrip().startswith(b"<"):
            check_xml_body(body)
        else:
            pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
            check_params(pairs)


def ogc_exception(message: str, status: int = 400, code: str = "InvalidParameterValue") -> Response:
    """An OWS 1.1 ExceptionReport (what WFS 2.0 uses; WMS clients read it as a service exception too)."""
    text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">\n'
        f'  <ows:Exception exceptionCode="{code}">\n    <ows:ExceptionText>{text}</ows:ExceptionText>\n'
        "  </ows:Exception>\n</ows:ExceptionReport>\n"
    )
    return Response(xml, status_code=status, media_type="text/xml; charset=UTF-8")


# -- scrubbing error answers ------------------------------------------------------------------------------------

_ERROR_MARKERS = (b"ServiceException", b"ExceptionReport", b"ExceptionText", b"MapServer Message", b"msLoadMap")
# an absolute path: after a start, space, quote, bracket, '=' or ':' (never inside a URL: "http://h/x" has a
# word character or "//" before its path)
_ABS_PATH = re.compile(r"(?<![\w/.:@-])/(?:[\w.+~-]+/)+[\w.+~-]*|(?<=[\s(\"'=\[,])/[\w.+~-]+\.\w+")
_POSTGIS_MESSAGE = re.compile(r"msPostGIS\w*\(\)[^<]*", re.S)
_LIBPQ_KEYS = re.compile(r"\b(host|hostaddr|port|dbname|user|password|sslmode|options)\s*=\s*('[^']*'|\S+)", re.I)
_VERSION_BANNER = re.compile(r"<!-- ?MapServer version [^>]*-->\n?")
_PG_SERVER = re.compile(r"connection to server[^<]*", re.I | re.S)
# MapServer 8 answers a WMS 1.3.0 CRS it does not offer with the WMS 1.1.1 code InvalidSRS; 1.3.0 says InvalidCRS
_WMS13_INVALID_SRS = re.compile(
    r'(<ServiceExceptionReport version="1\.3\.0"[^>]*>\s*<ServiceException code=")InvalidSRS"')


def scrub_error_text(text: str) -> str:
    """Remove server paths and database details from a MapServer error message."""
    text = _VERSION_BANNER.sub("", text)
    text = _POSTGIS_MESSAGE.sub("database query failed (details are in the server log)", text)
    text = _PG_SERVER.sub("database connection failed (details are in the server log)", text)
    text = _LIBPQ_KEYS.sub(lambda m: f"{m.group(1)}=***", text)
    text = _WMS13_INVALID_SRS.sub(r'\1InvalidCRS"', text)
    return _ABS_PATH.sub("[path]", text)


_BANNER_BYTES = re.compile(rb"<!-- ?MapServer version [^>]*-->\n?")


def strip_banner(content: bytes) -> bytes:
    """Drop MapServer's build banner (version, libraries) from the head of a capabilities document."""
    head = content[:4096]
    if b"MapServer version" not in head:
        return content
    return _BANNER_BYTES.sub(b"", head, count=1) + content[4096:]


def scrub_error_body(status: int, content: bytes) -> bytes:
    """``content`` with :func:`scrub_error_text` applied when it is an error answer (small, text)."""
    if len(content) > 200_000 or not (status >= 400 or any(m in content for m in _ERROR_MARKERS)):
        return content
    if content[:8] == b"\x89PNG\r\n\x1a\n" or content[:3] == b"\xff\xd8\xff":
        return content
    return scrub_error_text(content.decode("utf-8", errors="replace")).encode("utf-8")


def find_mapserv(configured: Path) -> str | None:
    if configured.exists():
        return str(configured)
    return shutil.which("mapserv")


def query_string_with_alias(raw: str, alias: str) -> str:
    """``map=<alias>`` followed by the client's parameters minus any ``map`` (raw encoding kept)."""
    kept = [p for p in raw.split("&") if p and p.split("=", 1)[0].lower() != "map"]
    return "&".join([f"map={alias}", *kept])


def parse_cgi_output(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split a CGI response into status, headers and body."""
    ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := output.find(sep)) >= 0]
    if not ends:
        return 502, {"Content-Type": "text/plain"}, b"mapserv returned no CGI headers: " + output[:500]
    end, size = min(ends)
    status, headers = 200, {}
    for line in output[:end].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name.lower() not in _HOP_BY_HOP:
            headers[name] = value
    return status, headers, output[end + size:]


class MapServerCGI:
    """Runs ``mapserv`` for one HTTP request (GET or POST) and turns its CGI output into a Response."""

    def __init__(self, mapserv: Path, config_file: Path, alias: str, max_concurrency: int = 8, timeout: float = 60,
                 *, workers: int = 0, socket_path: Path | None = None, version_file: Path | None = None,
                 mapfile: Path | None = None):
        self.mapserv = mapserv
        self.config_file = config_file
        self.alias = alias
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self.version_file = version_file
        self.mapfile = mapfile
        self._version_text: tuple[str, str] | None = None  # (stat stamp, text) of version_file
        self.pool: MapServerPool | None = None
        self._pool_failed = False
        if workers > 0:
            self.pool = MapServerPool(mapserv, socket_path or config_file.with_name("mapserv.sock"),
                                      self.process_environment(), workers)
        else:
            log.info("/ows: mapserv runs as a CGI subprocess per request (AMBERWATCH_MAPSERV_WORKERS=0)")

    @property
    def mode(self) -> str:
        return "fastcgi" if self.pool is not None and self.pool.running else "cgi"

    def _ensure_pool(self) -> MapServerPool | None:
        """The running pool, started on first use (the config file exists by then); None = use CGI."""
        pool = self.pool
        if pool is None or self._pool_failed:
            return None
        if not pool.running:
            try:
                pool.start()
            except OSError as err:
                self._pool_failed = True
                log.warning("mapserv FastCGI pool could not start (%s): /ows falls back to CGI per request", err)
                return None
        return pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()

    # -- published version: ETag ---------------------------------------------------------------------------------

    def published_version(self) -> str:
        """Stat of the version file and mapfile plus the version file's text; the text is re-read only when
        its stat changes (one stat per file per request, no read)."""
        parts = []
        for path in (self.version_file, self.mapfile):
            if path is None:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = f"{st.st_mtime_ns:x}.{st.st_size:x}"
            parts.append(stamp)
            if path is self.version_file:
                if self._version_text is None or self._version_text[0] != stamp:
                    self._version_text = (stamp, path.read_text().strip())
                parts.append(self._version_text[1])
        return "/".join(parts)

    def etag(self, request: Request) -> str | None:
        version = self.published_version()
        if not version:
            return None
        digest = hashlib.sha1(f"{version}\n{request.url.query}".encode(), usedforsecurity=False).hexdigest()
        return f'W/"{digest[:24]}"'

    def process_environment(self) -> dict[str, str]:
        """What every mapserv process gets: config file, dead proxy, PATH/PROJ/GDAL/PG* pass-through."""
        env = {k: v for k, v in os.environ.items() if k in _PASSTHROUGH_ENV or k.startswith("PG")}
        env.update(_PROXY_ENV)
        env["MAPSERVER_CONFIG_FILE"] = str(self.config_file)
        return env

    def environment(self, request: Request, body: bytes) -> dict[str, str]:
        """The CGI environment of one request (process environment plus the request's CGI variables)."""
        return {**self.process_environment(), **self.request_params(request, body)}

    def request_params(self, request: Request, body: bytes) -> dict[str, str]:
        """The CGI variables of one request (the FastCGI PARAMS)."""
        env: dict[str, str] = {}
        host = request.headers.get("host", "")
        env.update(
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=request.method,
            QUERY_STRING=query_string_with_alias(request.url.query, self.alias),
            SCRIPT_NAME="/ows",
            SERVER_NAME=host.rsplit(":", 1)[0] if host else "localhost",
            SERVER_PORT=str(request.url.port or (443 if request.url.scheme == "https" else 80)),
            REMOTE_ADDR=request.client.host if request.client else "",
            HTTP_HOST=host,
            HTTP_ACCEPT=request.headers.get("accept", "*/*"),
        )
        if request.method == "POST":
            env["CONTENT_TYPE"] = request.headers.get("content-type", "application/x-www-form-urlencoded")
            env["CONTENT_LENGTH"] = str(len(body))
        return env

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._answer(request)
        except Exception:  # an answer, never a torn connection (keep-alive clients go on)
            log.exception("/ows failed: %s", request.url.query[:300])
            return ogc_exception("MapServer request failed (see the server log)", 500, "NoApplicableCode")

    async def _answer(self, request: Request) -> Response:
        if not self.config_file.exists():
            return PlainTextResponse("no layers published yet (publish.refresh not run)", status_code=503)
        if request.method == "GET" and not request.url.query:
            return PlainTextResponse(
                "This is an OGC WMS 1.3.0 / WFS 2.0 endpoint: start with ?SERVICE=WMS&REQUEST=GetCapabilities "
                "or ?SERVICE=WFS&REQUEST=GetCapabilities",
                status_code=400,
            )
        body = await request.body() if request.method == "POST" else b""
        try:
            check_request(request.url.query, request.method, body)
        except RefusedRequest as refused:
            log.info("/ows refused from %s: %s", request.client.host if request.client else "?", refused)
            return ogc_exception(str(refused))
        etag = self.etag(request) if request.method == "GET" else None
        if etag is not None and etag_matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        pool = self._ensure_pool()
        out: bytes | None = None
        if pool is not None:
            try:
                async with self._slots:
                    out, err = await asyncio.wait_for(pool.request(self.request_params(request, body), body),
                                                      self.timeout)
            except TimeoutError:
                log.warning("mapserv (FastCGI) timed out after %.0f s: %s", self.timeout, request.url.query[:300])
                return PlainTextResponse(f"MapServer took longer than {self.timeout:.0f} s", status_code=504)
            except (OSError, FastCGIError) as failed:  # a worker died mid-request: restart it, answer by CGI
                log.warning("mapserv FastCGI request failed (%s): answering this one by CGI", failed)
                pool.wake()
                out = None
            if out is not None and err:
                log.debug("mapserv stderr: %s", err.decode(errors="replace")[:2000])
        if out is None:
            answer = await self._run_cgi(request, body)
            if isinstance(answer, Response):
                return answer
            out = answer
        status, headers, content = parse_cgi_output(out)
        scrubbed = scrub_error_body(status, content)
        if scrubbed is not content:
            log.info("mapserv error answer (%s): %s", status, content[:2000].decode(errors="replace"))
        content = strip_banner(scrubbed)
        if etag is not None and status == 200 and not any(m in content[:2048] for m in _ERROR_MARKERS):
            headers.update({"ETag": etag, "Cache-Control": "no-cache"})
        content = await _maybe_gzip(request, headers, content)
        return Response(content, status_code=status, headers=headers)

    async def _run_cgi(self, request: Request, body: bytes) -> bytes | Response:
        """mapserv as a CGI subprocess: its output, or an error Response."""
        env = self.environment(request, body)
        async with self._slots:
            proc = await asyncio.create_subprocess_exec(
                str(self.mapserv),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(body), self.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                log.warning("mapserv timed out after %.0f s: %s", self.timeout, env["QUERY_STRING"][:300])
                return PlainTextResponse(f"MapServer took longer than {self.timeout:.0f} s", status_code=504)
        if err:
            log.debug("mapserv stderr: %s", err.decode(errors="replace")[:2000])
        if proc.returncode != 0 and not out:
            log.error("mapserv exited with %s: %s", proc.returncode, err.decode(errors="replace")[:2000])
            return PlainTextResponse("MapServer failed (see the server log)", status_code=502)
        return out


_COMPRESSIBLE = re.compile(r"xml|json|gml|text/|javascript", re.I)
GZIP_MIN_BYTES = 1024


async def _maybe_gzip(request: Request, headers: dict[str, str], content: bytes) -> bytes:
    """Gzip XML/GML/JSON/text answers for clients that accept it (sets Content-Encoding and Vary)."""
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if not _COMPRESSIBLE.search(ctype) or len(content) < GZIP_MIN_BYTES:
        return content
    headers["Vary"] = "Accept-Encoding"
    if "gzip" not in request.headers.get("accept-encoding", "").lower():
        return content
    if any(k.lower() == "content-encoding" for k in headers):
        return content
    headers["Content-Encoding"] = "gzip"
    if len(content) > 256_000:
        return await asyncio.to_thread(gzip.compress, content, 5, mtime=0)
    return gzip.compress(content, 5, mtime=0)
