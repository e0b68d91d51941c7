"""pygeoapi (OGC API Features) as a swappable ASGI app built from our config dict.

pygeoapi's own ``starlette_app`` reads ``PYGEOAPI_CONFIG``/``PYGEOAPI_OPENAPI`` once at import time and
keeps one global ``API`` object, so it cannot pick up new collections. Here each config becomes its own
``API`` + Starlette app, and :class:`OgcApiApp` serves the current one: it reloads when the config file on
disk was replaced (``refresh`` replaces it atomically), so a request sees the old or the new config, and
other worker processes pick the change up on their next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path

import yaml
from pygeoapi import api as core_api
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.api import itemtypes as itemtypes_api
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

STATIC_DIR = Path(core_api.__file__).resolve().parents[1] / "static"


def make_api(config: dict, openapi: dict) -> API:
    """pygeoapi's API object. pygeoapi would configure the root logger (``logging.basicConfig``) with its level;
    here its level applies to the ``pygeoapi`` logger only (it warns on every items request without offset)."""
    logging.getLogger("pygeoapi").setLevel(config.get("logging", {}).get("level", "ERROR"))
    root = logging.getLogger()
    guard = None
    if not root.handlers:
        guard = logging.NullHandler()
        root.addHandler(guard)
    try:
        return API(deepcopy(config), openapi)
    finally:
        if guard is not None:
            root.removeHandler(guard)


def _to_response(headers: dict, status: int, content) -> Response:
    if headers.get("Content-Type") == "text/html":
        response: Response = HTMLResponse(content=content, status_code=status)
    elif isinstance(content, dict):
        response = JSONResponse(content, status_code=status)
    else:
        response = Response(content, status_code=status)
    response.headers.update(headers)
    return response


def _endpoint(api: API, function: Callable, params: tuple[str, ...] = (), skip_valid_check: bool = False):
    async def endpoint(request: Request) -> Response:
        api_request = await APIRequest.from_starlette(request, api.locales)
        args = [request.path_params.get(p) for p in params]
        if not skip_valid_check and not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            loop = asyncio.get_running_loop()

            def call():
                asyncio.set_event_loop(loop)  # some pygeoapi code looks for a loop in the worker thread
                return function(api, api_request, *args)

            headers, status, content = await loop.run_in_executor(None, call)
            content = apply_gzip(headers, content)
        return _to_response(headers, status, content)

    return endpoint


def build_app(config: dict, openapi: dict) -> Starlette:
    """A Starlette app with pygeoapi's OGC API Features (and common) routes for one config."""
    api = make_api(config, openapi)
    cid = "{collection_id:path}"
    routes = [
        Route("/", _endpoint(api, core_api.landing_page)),
        Route("/openapi", _endpoint(api, core_api.openapi_)),
        Route("/conformance", _endpoint(api, core_api.conformance)),
        Route("/collections", _endpoint(api, core_api.describe_collections)),
        Route(f"/collections/{cid}/schema", _endpoint(api, core_api.get_collection_schema, ("collection_id",))),
        Route(
            f"/collections/{cid}/queryables",
            _endpoint(api, itemtypes_api.get_collection_queryables, ("collection_id",)),
        ),
        Route(
            f"/collections/{cid}/items",
            _endpoint(api, itemtypes_api.get_collection_items, ("collection_id",), skip_valid_check=True),
        ),
        Route(
            f"/collections/{cid}/items/{{item_id:path}}",
            _endpoint(api, itemtypes_api.get_collection_item, ("collection_id", "item_id")),
        ),
        Route(f"/collections/{cid}", _endpoint(api, core_api.describe_collections, ("collection_id",))),
    ]
    return Starlette(routes=[Mount("/static", StaticFiles(directory=STATIC_DIR)), *routes])


def load_files(config_path: Path, openapi_path: Path) -> tuple[dict, dict]:
    with open(config_path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    with open(openapi_path, encoding="utf-8") as fh:
        openapi = json.load(fh)
    return config, openapi


class OgcApiApp:
    """ASGI app serving the pygeoapi app of the current config file; rebuilt when the file is replaced."""

    def __init__(self, config_path: Path, openapi_path: Path):
        self.config_path = config_path
        self.openapi_path = openapi_path
        self._app: Starlette | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.config_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def swap(self, config: dict, openapi: dict, stamp: tuple[int, int, int] | None = None) -> None:
        """Serve ``config`` from the next request on (in-flight requests finish on the old app)."""
        app = build_app(config, openapi)
        with self._lock:
            self._app, self._stamp = app, stamp or self._file_stamp()

    def current(self) -> Starlette | None:
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    config, openapi = load_files(self.config_path, self.openapi_path)
                    self._app, self._stamp = build_app(config, openapi), stamp
                    log.info("OGC API Features: loaded %d collections from %s",
                             len(config.get("resources", {})), self.config_path)
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.current()
        if app is None:
            if scope["type"] == "http":
                response = JSONResponse(
                    {"code": "ServiceUnavailable", "description": "no layers published yet (publish.refresh not run)"},
                    status_code=503,
                )
                await response(scope, receive, send)
            return
        await app(scope, receive, send)
