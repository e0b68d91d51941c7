"""``refresh`` (re)writes the OGC configs from the published runs; ``mount`` serves them in the FastAPI app."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from fastapi import FastAPI, Query
from pygeoapi.openapi import get_oas
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from amberwatch.publish.atomic import write_atomic
from amberwatch.publish.catalog import PublishedRun, ensure_layer_views, ensure_run_views, read_catalog
from amberwatch.publish.connection import DbParams
from amberwatch.publish.layers import ADMIN_LAYERS, MAP_ALIAS, build_layers, recent_runs
from amberwatch.publish.ogcapi import OgcApiApp
from amberwatch.publish.ows import MapServerCGI, find_mapserv
from amberwatch.publish.render import (
    find_label_font,
    render_fontset,
    render_mapfile,
    render_mapserver_config,
    render_pygeoapi_config,
)
from amberwatch.publish.versions import versions_document
from amberwatch.settings import Settings
from amberwatch.store.db import Store

log = logging.getLogger(__name__)

_thread_lock = threading.Lock()
_mounted: weakref.WeakSet[OgcApiApp] = weakref.WeakSet()


@dataclass(frozen=True)
class OgcPaths:
    """The generated files under ``data_dir/ogc``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> OgcPaths:
        return cls(settings.data_dir.resolve() / "ogc")

    @property
    def mapfile(self) -> Path:
        return self.root / "amberwatch.map"

    @property
    def mapserver_config(self) -> Path:
        return self.root / "mapserver.conf"

    @property
    def pygeoapi_config(self) -> Path:
        return self.root / "pygeoapi-config.yml"

    @property
    def openapi(self) -> Path:
        return self.root / "pygeoapi-openapi.json"

    @property
    def fontset(self) -> Path:
        return self.root / "fonts.txt"

    @property
    def version(self) -> Path:
        """The published version (latest published run id, time of the refresh): /ows ETags are keyed on it."""
        return self.root / "published-version"

    @property
    def mapserv_socket(self) -> Path:
        """The FastCGI pool's socket, one per process (``uvicorn --workers N`` runs N apps with N pools)."""
        return self.root / f"mapserv-{os.getpid()}.sock"


@dataclass(frozen=True)
class PublishState:
    """What ``refresh`` published."""

    layers: tuple[str, ...]  # same names in WMS/WFS (/ows) and OGC API Features (/ogcapi)
    runs: tuple[PublishedRun, ...]
    time_extent: tuple[str, ...]  # WMS TIME values of the ``detections`` layer (UTC dates)
    n_sites: int
    n_detections: int
    ows_url: str
    ogcapi_url: str
    paths: OgcPaths
    created_views: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)  # features per monitoring layer (events, oblasts, ...)
    refreshed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One refresh at a time, across threads and processes sharing the data directory."""
    root.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(root / ".refresh.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_GENERATED = re.compile(r"Generated [0-9T:+.-]+\.")


def _same(path: Path, text: str) -> bool:
    """``path`` holds ``text`` already (ignoring the "Generated <time>." stamp)."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return False
    return _GENERATED.sub("", old, count=1) == _GENERATED.sub("", text, count=1)


def refresh(store: Store, settings: Settings) -> PublishState:
    """Publish what the database says is published: the layer views (``run_<id>``, admin kinds, mapped site
    history), mapfile, MapServer config, pygeoapi config + OpenAPI document (each replaced atomically), and swap
    the mounted pygeoapi app. Empty monitoring tables still give their (empty) layers."""
    t0 = time.perf_counter()
    paths = OgcPaths.of(settings)
    db = DbParams.from_store(store)
    base_url = settings.base_url
    with _exclusive(paths.root):
        created = ensure_layer_views(store.engine)
        catalog = read_catalog(store.engine)
        keep = settings.published_run_layers
        created += ensure_run_views(store.engine, [run.id for run in recent_runs(catalog, keep)])
        layers = build_layers(catalog, keep)
        font = find_label_font()
        if font is None:
            log.warning("no DejaVuSans.ttf found (apt-get install fonts-dejavu-core): WMS layers have no labels")

        # render everything first: a failure leaves all the old files in place
        mapfile_text = render_mapfile(layers, db, base_url, paths.fontset if font else None,
                                      config_dir=settings.ogc_config_dir)
        mapserver_config_text = render_mapserver_config(paths.mapfile, config_dir=settings.ogc_config_dir)
        config_text = render_pygeoapi_config(layers, db, base_url, settings.host, settings.port,
                                             config_dir=settings.ogc_config_dir)
        # publishing changes data, not configuration, when it can: a config that is the same (but for its
        # "Generated" time) is not rewritten, and pygeoapi is not rebuilt
        pygeoapi_changed = not (_same(paths.pygeoapi_config, config_text) and paths.openapi.exists())
        if pygeoapi_changed:
            config = yaml.safe_load(config_text)
            openapi = get_oas(config)

        if font is not None:
            write_atomic(paths.fontset, render_fontset(font), mode=0o644)
        if not _same(paths.mapfile, mapfile_text):
            write_atomic(paths.mapfile, mapfile_text)
        if not _same(paths.mapserver_config, mapserver_config_text):
            write_atomic(paths.mapserver_config, mapserver_config_text)
        if pygeoapi_changed:
            # the OpenAPI document before the config: a reader that sees the new config finds the matching document
            write_atomic(paths.openapi, json.dumps(openapi, default=str))
            write_atomic(paths.pygeoapi_config, config_text)
            for app in list(_mounted):
                if app.config_path == paths.pygeoapi_config:
                    app.swap(config, openapi)
        # the published version (ETags of /ows): always new, also when no configuration changed
        latest = max((run.id for run in catalog.runs), default=0)
        write_atomic(paths.version, f"{latest} {datetime.now(UTC).isoformat()}\n", mode=0o644)

    state = PublishState(
        layers=tuple(layer.name for layer in layers),
        runs=catalog.runs,
        time_extent=catalog.dates,
        n_sites=catalog.n_sites,
        n_detections=catalog.n_detections,
        ows_url=f"{base_url}/ows",
        ogcapi_url=f"{base_url}/ogcapi",
        paths=paths,
        created_views=tuple(created),
        counts={
            "events": catalog.events.count,
            "site_history": catalog.history.count,
            **{name: catalog.admin[kind].count for kind, name in ADMIN_LAYERS.items()},
            "protected_areas": catalog.protected_areas.count,
        },
        seconds=time.perf_counter() - t0,
    )
    log.info(
        "published %d layers (%d runs, %d detections, %d sites) in %.2f s: %s",
        len(state.layers), len(state.runs), state.n_detections, state.n_sites, state.seconds, ", ".join(state.layers),
    )
    return state


def mount(app: FastAPI, store: Store, settings: Settings) -> None:
    """Serve OGC API Features (pygeoapi) at ``/ogcapi`` and WMS/WFS (MapServer) at ``/ows``: a pool of
    ``settings.mapserv_workers`` FastCGI workers started on the first /ows request, or CGI per request.

    Does not touch the database: until ``refresh`` has written the configs both answer 503.
    """
    paths = OgcPaths.of(settings)
    ogcapi = OgcApiApp(paths.pygeoapi_config, paths.openapi)
    _mounted.add(ogcapi)
    app.state.ogcapi = ogcapi
    app.mount("/ogcapi", ogcapi, name="ogcapi")

    mapserv = find_mapserv(settings.mapserv_bin)
    if mapserv is None:
        log.error("mapserv not found at %s nor on PATH: /ows answers 503 (apt-get install cgi-mapserver)",
                  settings.mapserv_bin)

        async def ows(request: Request) -> Response:
            return Response(f"MapServer is not installed ({settings.mapserv_bin} not found)", status_code=503)
    else:
        cgi = MapServerCGI(Path(mapserv), paths.mapserver_config, MAP_ALIAS, workers=settings.mapserv_workers,
                           socket_path=paths.mapserv_socket, version_file=paths.version, mapfile=paths.mapfile)
        app.state.ows = cgi
        if cgi.pool is not None:  # stop the workers when the app goes away (or at exit), without keeping it alive
            weakref.finalize(cgi, cgi.pool.stop)

        async def ows(request: Request) -> Response:
            return await cgi(request)

    def versions(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=2**31 - 1)) -> JSONResponse:
        """The published runs (versions) as a STAC Collection, newest first, with each version's filtered
        WMS (DIM_RUN), WFS 2.0 (FILTER on run_id) and OGC API Features (run_id=, CQL2) URLs."""
        doc = versions_document(store.engine, settings.base_url, settings.published_run_layers, limit, offset)
        return JSONResponse(doc, headers={"Cache-Control": "no-cache"})

    app.add_api_route("/api/versions", versions, methods=["GET"], operation_id="versions",
                      summary="Versions (published runs) of the detections, as a STAC Collection", tags=["ogc"])

    for method in ("GET", "POST"):
        app.add_api_route(
            "/ows",
            ows,
            methods=[method],
            operation_id=f"ows_{method.lower()}",
            include_in_schema=True,
            summary=f"OGC WMS 1.3.0 / WFS 2.0 (MapServer), {method}",
            description=(
                "Layers: mining_sites (WMS TIME on first_seen), detections (WMS TIME on observed_at, DIM_RUN=<run "
                "id> selects a version), events and site_history (WMS TIME on observed_at), run_<id> for the latest "
                "published runs (AMBERWATCH_PUBLISHED_RUN_LAYERS), oblasts, raions, hromadas, protected_areas."
            ),
            tags=["ogc"],
        )
