"""pygeoapi (OGC API Features) as a swappable ASGI app built from our config dict.

pygeoapi's own ``starlette_app`` reads ``PYGEOAPI_CONFIG``/``PYGEOAPI_OPENAPI`` once at import time and
keeps one global ``API`` object, so it cannot pick up new collections. Here each config becomes its own
``API`` + Starlette app, and :class:`OgcApiApp` serves the current one: it reloads when the config file on
disk was replaced (``refresh`` replaces it atomically), so a request sees the old or the new config, and
other worker processes pick the change up on their next request.

A request guard runs before pygeoapi (:func:`check_request`): NUL bytes, ``offset``/``limit`` that are not
bounded integers and item ids that the collection's integer id column cannot hold get a 400/404 OGC API
exception instead of a database error; a value the database refuses for its column (``?site_id=abc``) is a 400,
and any other failure an OGC API exception 500 without internals, answered completely (the keep-alive
connection stays usable).

Conformance (docs/conformance.md): the conformance declaration adds the OGC API Features Part 3 / CQL2 classes
pygeoapi 0.21 implements without declaring them and drops Part 4, which this read-only service does not offer;
items and single items are ``application/geo+json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

import yaml
from pygeoapi import api as core_api
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.api import itemtypes as itemtypes_api
from sqlalchemy.exc import ArgumentError, CompileError, DataError, DBAPIError
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from amberwatch.publish.fastitems import FastItems

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


# -- the request guard ------------------------------------------------------------------------------------------

MAX_OFFSET = 2**31 - 1  # far beyond any collection; PostgreSQL's bigint would overflow at 2**63
MAX_LIMIT = 2**31 - 1  # pygeoapi then throttles to server.limits.max_items
_INTEGER_TYPES = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
_DIGITS = re.compile(r"[0-9]{1,19}")
_SIGNED_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")
_ITEM_PATH = re.compile(r"/collections/([^/]+)/items/(.+?)/?")
_SORT_KEY = re.compile(r"\s*[+-]?[^\s,+-][^,]*")  # pygeoapi 0.24 fails (IndexError) on an empty sortby entry


def problem(status: int, code: str, description: str) -> JSONResponse:
    """An OGC API exception (pygeoapi's JSON shape)."""
    return JSONResponse({"code": code, "type": code, "description": description}, status_code=status)


def _bounded_integer(name: str, value: str, low: int, high: int) -> str | None:
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        return f"{name} must be an integer from {low} to {high}"
    return None


def id_types_of(config: dict) -> dict[str, str]:
    """Collection -> PostgreSQL type of its id column (from the ``amberwatch.id_types`` block of our config)."""
    return dict((config.get("amberwatch") or {}).get("id_types") or {})


def timeless_collections(config: dict) -> frozenset[str]:
    """Collections whose provider has no ``time_field`` (pygeoapi answers ``datetime=`` there with a 500)."""
    return frozenset(
        name for name, resource in (config.get("resources") or {}).items()
        if not any(p.get("time_field") for p in resource.get("providers") or [])
    )


_ITEMS_PATH = re.compile(r"/collections/([^/]+)/items/?")


def check_request(path: str, query: bytes, id_types: dict[str, str],
                  timeless: frozenset[str] = frozenset()) -> JSONResponse | None:
    """The 4xx answer for a request pygeoapi must not see, or None. ``path`` is relative to the mount."""
    if "\x00" in path or b"\x00" in query or b"%00" in query:
        return problem(400, "InvalidParameterValue", "NUL characters are not allowed in the path or parameters")
    params = parse_qsl(query.decode("utf-8", errors="replace"), keep_blank_values=True)
    for name, value in params:
        error = None
        if name == "offset":
            error = _bounded_integer("offset", value, 0, MAX_OFFSET)
        elif name == "limit":
            error = _bounded_integer("limit", value, 1, MAX_LIMIT)
        elif name == "sortby" and not all(_SORT_KEY.fullmatch(key) for key in value.split(",")):
            error = "sortby must be a comma-separated list of property names, each optionally prefixed by + or -"
        if error:
            return problem(400, "InvalidParameterValue", error)
    items = _ITEMS_PATH.fullmatch(path)
    if items and items.group(1) in timeless and any(name == "datetime" for name, _ in params):
        return problem(400, "InvalidParameterValue",
                       f"{items.group(1)} has no time property: the datetime parameter does not apply")
    match = _ITEM_PATH.fullmatch(path)
    if match:
        collection, item_id = match.groups()
        high = _INTEGER_TYPES.get(id_types.get(collection, ""))
        if high is not None and not (_SIGNED_DIGITS.fullmatch(item_id) and -high - 1 <= int(item_id) <= high):
            return problem(404, "NotFound",
                           f"no item {item_id[:100]!r} in {collection}: its item ids are integers of at most {high}")
    return None


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _raised_in(err: BaseException, package: str) -> bool:
    """Was ``err`` raised while code of ``package`` was running (any frame of its traceback)?"""
    tb = err.__traceback__
    while tb is not None:
        if f"/{package}/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


# SQLSTATEs a request's own values cause (?site_id=abc, filter=first_seen=5): data exceptions (class 22) and
# type mismatches between a property and a literal (no such operator / function, datatype mismatch).
_CLIENT_SQLSTATES = ("42883", "42804", "42P18", "42725")
_POSTGIS_LITERAL_ERRORS = ("parse error - invalid geometry", "mixed SRID", "unknown WKB type", "Invalid hex string")


def client_caused(err: DBAPIError) -> bool:
    """Did the request's values make PostgreSQL refuse the query (a 400), rather than the server (a 500)?"""
    code = str(getattr(err.orig, "pgcode", "") or "")
    if code == "XX000":  # PostGIS reports a bad geometry literal as an internal error
        return any(text in str(err.orig) for text in _POSTGIS_LITERAL_ERRORS)
    return isinstance(err, DataError) or code.startswith("22") or code in _CLIENT_SQLSTATES


# pygeofilter turns the client's CQL into SQLAlchemy expressions: what fails there is the filter's fault
_FILTER_ERRORS = (KeyError, ValueError, TypeError, NotImplementedError, AttributeError, ArgumentError, CompileError)


def _failure(err: Exception, request: Request) -> Response:
    """The answer to an exception inside pygeoapi: 400 when the request's values caused it, else a bare 500."""
    if isinstance(err, DBAPIError) and client_caused(err):
        log.info("OGC API: value refused by the database: %s", request.url, exc_info=True)
        return problem(400, "InvalidParameterValue",
                       "a parameter or filter value does not fit the type of its property")
    if isinstance(err, _FILTER_ERRORS) and _raised_in(err, "pygeofilter"):
        # the client's filter names a function or construct the SQL translation does not know
        log.info("OGC API: filter not translatable: %s", request.url, exc_info=True)
        return problem(400, "InvalidParameterValue",
                       "the filter uses a function or construct this server does not support")
    log.error("OGC API request failed: %s", request.url, exc_info=err)
    return problem(500, "NoApplicableCode", "the request failed (see the server log)")


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

            try:
                headers, status, content = await loop.run_in_executor(None, call)
            except Exception as err:
                return _failure(err, request)
            content = apply_gzip(headers, content)
        return _to_response(headers, status, content)

    return endpoint


# OGC API Features Part 3 and CQL2 classes that pygeoapi 0.21 implements (``filter``/``filter-lang`` with CQL2 text
# through pygeofilter, S_INTERSECTS & co. via :func:`cql2_lang`) but does not declare; Part 4 (create, replace,
# delete) it declares although this service has no transactions.
FILTER_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
)
UNSUPPORTED_CONFORMANCE = ("http://www.opengis.net/spec/ogcapi-features-4/",)


def conformance(api: API, request: APIRequest) -> tuple[dict, int, Any]:
    """pygeoapi's conformance declaration with :data:`FILTER_CONFORMANCE` and without Part 4."""
    headers, status, content = core_api.conformance(api, request)
    if status != 200 or request.format == "html":
        return headers, status, content
    try:
        doc = json.loads(content)
    except (TypeError, ValueError):
        return headers, status, content
    classes = {c for c in doc.get("conformsTo", []) if not c.startswith(UNSUPPORTED_CONFORMANCE)}
    doc["conformsTo"] = sorted(classes | set(FILTER_CONFORMANCE))
    return headers, status, json.dumps(doc)


GEOJSON = "application/geo+json"


def geojson(function: Callable) -> Callable:
    """Items and single items as ``application/geo+json`` (OGC API Features /req/geojson/content; pygeoapi 0.21
    says ``application/json``)."""
    def wrapped(api: API, request: APIRequest, *args: Any) -> tuple[dict, int, Any]:
        headers, status, content = function(api, request, *args)
        if status < 400 and str(headers.get("Content-Type", "")).startswith("application/json"):
            headers["Content-Type"] = GEOJSON
        return headers, status, content

    return wrapped


def _items_endpoint(api: API, fast: FastItems | None) -> Callable:
    """Items: the fast path (:mod:`amberwatch.publish.fastitems`) for plain GeoJSON pages, pygeoapi for the rest."""
    pygeoapi_items = _endpoint(api, geojson(itemtypes_api.get_collection_items), ("collection_id",),
                               skip_valid_check=True)
    if fast is None:
        return pygeoapi_items

    async def endpoint(request: Request) -> Response:
        api_request = await APIRequest.from_starlette(request, api.locales)
        collection_id = request.path_params.get("collection_id", "")

        def call() -> Response | None:
            query = fast.plan(collection_id, request, api_request)
            return None if query is None else fast.answer(query, api_request)

        try:
            response = await asyncio.get_running_loop().run_in_executor(None, call)
        except Exception as err:
            return _failure(err, request)
        return response if response is not None else await pygeoapi_items(request)

    return endpoint


def fast_items_enabled(config: dict) -> bool:
    """``amberwatch.fast_items`` of our config (default on; off serves every items request through pygeoapi)."""
    return bool((config.get("amberwatch") or {}).get("fast_items", True))


def build_app(config: dict, openapi: dict) -> Starlette:
    """A Starlette app with pygeoapi's OGC API Features (and common) routes for one config."""
    api = make_api(config, openapi)
    fast = FastItems(api, config) if fast_items_enabled(config) else None
    cid = "{collection_id:path}"
    routes = [
        Route("/", _endpoint(api, core_api.landing_page)),
        Route("/openapi", _endpoint(api, core_api.openapi_)),
        Route("/conformance", _endpoint(api, conformance)),
        Route("/collections", _endpoint(api, core_api.describe_collections)),
        Route(f"/collections/{cid}/schema", _endpoint(api, core_api.get_collection_schema, ("collection_id",))),
        Route(
            f"/collections/{cid}/queryables",
            _endpoint(api, itemtypes_api.get_collection_queryables, ("collection_id",)),
        ),
        Route(f"/collections/{cid}/items", _items_endpoint(api, fast)),
        Route(
            f"/collections/{cid}/items/{{item_id:path}}",
            _endpoint(api, geojson(itemtypes_api.get_collection_item), ("collection_id", "item_id")),
        ),
        Route(f"/collections/{cid}", _endpoint(api, core_api.describe_collections, ("collection_id",))),
    ]
    app = Starlette(routes=[Mount("/static", StaticFiles(directory=STATIC_DIR)), *routes])
    app.state.id_types = id_types_of(config)
    app.state.timeless = timeless_collections(config)
    return app


def load_files(config_path: Path, openapi_path: Path) -> tuple[dict, dict]:
    with open(config_path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    with open(openapi_path, encoding="utf-8") as fh:
        openapi = json.load(fh)
    return config, openapi


_CQL2_LANG = re.compile(rb"(^|&)(filter-lang=)cql2-(text|json)(?=&|$)", re.I)
# CQL2 spatial functions (S_INTERSECTS ...) under their ECQL names, which pygeofilter's ECQL parser reads
_CQL2_SPATIAL = re.compile(r"\bS_(INTERSECTS|DISJOINT|CONTAINS|WITHIN|TOUCHES|CROSSES|OVERLAPS|EQUALS)(?=\s*\()", re.I)
_FILTER_PARAM = re.compile(rb"(^|&)(filter=)([^&]*)", re.I)


def _ecql_spatial(match: re.Match[bytes]) -> bytes:
    text = unquote_plus(match.group(3).decode("utf-8", errors="replace"))
    if not _CQL2_SPATIAL.search(text):
        return match.group(0)
    # outside string literals only ('...' with '' as the escaped quote)
    parts = re.split(r"('(?:[^']|'')*')", text)
    text = "".join(p if p.startswith("'") else _CQL2_SPATIAL.sub(lambda m: m.group(1).upper(), p) for p in parts)
    return match.group(1) + match.group(2) + quote(text, safe="").encode()


def cql2_lang(scope: Scope) -> Scope:
    """``filter-lang=cql2-text`` / ``cql2-json`` (OGC API Features Part 3, what QGIS and GDAL send) as pygeoapi
    0.21 names them (``cql-text`` / ``cql-json``; it parses the text with pygeofilter's ECQL parser, which reads
    CQL2 text comparisons, AND/OR/NOT, LIKE, BETWEEN, IN and spatial predicates), and CQL2's ``S_INTERSECTS``,
    ``S_WITHIN`` ... as ECQL's ``INTERSECTS``, ``WITHIN`` ..."""
    query = scope.get("query_string", b"")
    lowered = query.lower()
    if b"cql2-" not in lowered and b"s_" not in lowered:
        return scope
    query = _CQL2_LANG.sub(rb"\1\2cql-\3", query)
    query = _FILTER_PARAM.sub(_ecql_spatial, query)
    return {**scope, "query_string": query}


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
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        scope = cql2_lang(scope)
        refused = check_request(_route_path(scope), scope.get("query_string", b""), app.state.id_types,
                                app.state.timeless)
        if refused is not None:
            await refused(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            # gzip for clients that accept it (GeoJSON pages shrink about 5x; images and small answers as they are)
            await GZipMiddleware(app, minimum_size=1024)(scope, receive, tracked_send)
        except Exception:
            # Starlette's error middleware has already answered 500 when started: re-raising would only make
            # the server drop the keep-alive connection
            log.exception("OGC API request failed: %s", scope.get("path"))
            if not started:
                await problem(500, "NoApplicableCode", "the request failed (see the server log)")(scope, receive, send)
