"""``/ows``: WMS 1.3.0 / WFS 2.0 answered by MapServer's ``mapserv`` run as a CGI subprocess per request.

The map alias is injected here: clients call ``/ows?SERVICE=WMS&REQUEST=GetCapabilities`` and never see or
choose a mapfile (any ``map=`` they send is dropped; the config file also allows the alias only).
For production speed run mapserv as FastCGI workers behind nginx instead (infra/).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PROJ_DATA", "PROJ_LIB", "GDAL_DATA")
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


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

    def __init__(self, mapserv: Path, config_file: Path, alias: str, max_concurrency: int = 8, timeout: float = 60):
        self.mapserv = mapserv
        self.config_file = config_file
        self.alias = alias
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)

    def environment(self, request: Request, body: bytes) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _PASSTHROUGH_ENV or k.startswith("PG")}
        host = request.headers.get("host", "")
        env.update(
            MAPSERVER_CONFIG_FILE=str(self.config_file),
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
        if not self.config_file.exists():
            return PlainTextResponse("no layers published yet (publish.refresh not run)", status_code=503)
        if request.method == "GET" and not request.url.query:
            return PlainTextResponse(
                "This is an OGC WMS 1.3.0 / WFS 2.0 endpoint: start with ?SERVICE=WMS&REQUEST=GetCapabilities "
                "or ?SERVICE=WFS&REQUEST=GetCapabilities",
                status_code=400,
            )
        body = await request.body() if request.method == "POST" else b""
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
        status, headers, content = parse_cgi_output(out)
        return Response(content, status_code=status, headers=headers)
