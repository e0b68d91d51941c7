"""The open geoportal: the map at ``/``, a page per site at ``/sites/{id}``, statistics at ``/stats``, the site's
downloads, image chips and evidence report, the area report, place search and the built static files.

Pages are rendered on the server from the portal's templates in the visitor's language (``?lang=uk|en``, then the
choice remembered in a cookie, then Accept-Language); every text comes from the message catalogs.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from amberwatch import portal
from amberwatch.errors import InputError, NotFoundError
from amberwatch.httpcache import etag_matches
from amberwatch.usecases import accuracy, monitoring, reports
from amberwatch.usecases import portal as portal_uc
from amberwatch.web.deps import SettingsDep, StoreDep
from amberwatch.web.monitoring import base_url, site_id_path

router = APIRouter()
HEAVY_AT_ONCE = 2


def heavy(request: Request) -> asyncio.Semaphore:
    """Reports and chips read rasters and lay out PDFs (0.5-1.5 s of CPU each): at most two at once per app (one
    semaphore per app, made in its event loop)."""
    semaphore: asyncio.Semaphore | None = getattr(request.app.state, "portal_heavy", None)
    if semaphore is None:
        semaphore = request.app.state.portal_heavy = asyncio.Semaphore(HEAVY_AT_ONCE)
    return semaphore


HeavyDep = Annotated[asyncio.Semaphore, Depends(heavy)]
api = APIRouter(prefix="/api", tags=["portal"])
STATIC_PREFIX = "/portal/static"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
PAGE_HEADERS = {"Cache-Control": "no-cache", "Vary": "Accept-Language, Cookie", "X-Content-Type-Options": "nosniff"}


# -- language --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lang:
    code: str
    explicit: bool  # chosen with ?lang= (remembered in a cookie)


def language(request: Request,
             lang: Annotated[str | None, Query(description="uk or en (default: the browser's language)")] = None
             ) -> Lang:
    if lang is not None and lang not in portal.LANGS:
        raise InputError(f"lang={lang[:10]!r}: use one of {', '.join(portal.LANGS)}")
    chosen = portal.negotiate(lang, request.cookies.get(portal.LANG_COOKIE), request.headers.get("accept-language"))
    return Lang(chosen, lang is not None)


LangDep = Annotated[Lang, Depends(language)]


def page_response(html: str, lang: Lang, status: int = 200) -> HTMLResponse:
    """A rendered portal page with the page headers (and the language cookie when the language was chosen)."""
    response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "Content-Language": lang.code})
    if lang.explicit:
        response.set_cookie(portal.LANG_COOKIE, lang.code, max_age=365 * 86400, samesite="lax")
    return response


# -- static files: ETag, Cache-Control, gzip -----------------------------------------------------------
@dataclass
class _Static:
    mtime: float
    etag: str
    media: str
    raw: bytes
    gz: bytes | None


_static_cache: dict[str, _Static] = {}
_static_lock = threading.Lock()


def _static(name: str) -> _Static:
    root = portal.STATIC_DIR.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"no static file {name[:80]!r}" + ("" if root.is_dir() else " (run `make portal`)"))
    mtime = path.stat().st_mtime
    with _static_lock:
        cached = _static_cache.get(name)
        if cached is None or cached.mtime != mtime:
            raw = path.read_bytes()
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media == "application/javascript":
                media += "; charset=utf-8"
            gz = gzip.compress(raw, 9, mtime=0) if media.startswith(COMPRESSIBLE) and len(raw) > 512 else None
            cached = _Static(mtime, '"' + hashlib.sha256(raw).hexdigest()[:20] + '"', media, raw, gz)
            _static_cache[name] = cached
        return cached


def static_url(name: str) -> str:
    """The URL of a built static file with its content version (cached for a year by browsers)."""
    try:
        version = _static(name).etag.strip('"')[:12]
    except NotFoundError:
        version = "missing"
    return f"{STATIC_PREFIX}/{name}?v={version}"


@router.get(STATIC_PREFIX + "/{name:path}", include_in_schema=False)
def static_file(name: str, request: Request) -> Response:
    f = _static(name)
    versioned = request.query_params.get("v") == f.etag.strip('"')[:12]
    headers = {"ETag": f.etag, "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff",
               "Cache-Control": "public, max-age=31536000, immutable" if versioned else "public, max-age=300"}
    if etag_matches(request.headers.get("if-none-match", ""), f.etag):
        return Response(status_code=304, headers=headers)
    if f.gz is not None and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(f.gz, media_type=f.media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(f.raw, media_type=f.media, headers=headers)


def common_context(request: Request, lang: Lang) -> dict[str, Any]:
    """What every portal template needs: ``static_url``, the path and the other language's link."""
    other = "en" if lang.code == "uk" else "uk"
    return {"static_url": static_url, "path": request.url.path, "other_lang": other,
            "other_lang_url": f"{request.url.path}?lang={other}"}


# -- pages ------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request, store: StoreDep, settings: SettingsDep, lang: LangDep) -> HTMLResponse:
    config = {**portal_uc.map_config(store, settings), "worker_url": static_url("js/maplibre-gl-worker.mjs")}
    return page_response(portal.render("map.html", lang.code, config=config, **common_context(request, lang)), lang)


@router.get("/sites/{site_id}", response_class=HTMLResponse, include_in_schema=False)
def site_html(request: Request, store: StoreDep, lang: LangDep,
              site_id: Annotated[str, Path()]) -> HTMLResponse:
    common = common_context(request, lang)
    try:
        sid = site_id_path(site_id)
        page = portal_uc.site_page(store, sid)
    except (NotFoundError, InputError):
        t = portal.translator(lang.code)
        message = t("site.not_found", id=site_id[:20])
        return page_response(portal.render("error.html", lang.code, message=message, **common), lang, 404)
    return page_response(portal.render("site.html", lang.code, page=page, site=page.site,
                                       colours=portal_uc.STATUS_COLOURS, iso_day=portal_uc.iso_day,
                                       **reports.people_checks(store, sid), **common), lang)


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(request: Request, store: StoreDep, lang: LangDep,
               by: Annotated[str, Query(description="oblast, raion, hromada or year")] = "oblast") -> HTMLResponse:
    stats = monitoring.stats(store, monitoring.check_by(by))
    reports = accuracy.latest_reports(store)  # the latest accuracy report of each model version
    return page_response(portal.render("stats.html", lang.code, stats=stats, by=by, accuracy=reports,
                               **common_context(request, lang)), lang)


# -- API: search, downloads, chips, reports ------------------------------------------------------------
@api.get("/places")
def places(store: StoreDep, settings: SettingsDep,
           q: Annotated[str, Query(description="A name (or part of it) or a site number.", max_length=200)],
           limit: Annotated[int, Query(ge=1, le=50)] = portal_uc.SEARCH_LIMIT) -> JSONResponse:
    """Sites by number, admin units (oblast, raion, hromada), protected areas and named places whose name contains
    ``q``; each result has a ``bbox`` (minlon, minlat, maxlon, maxlat) to zoom to."""
    return JSONResponse({"q": q, "results": portal_uc.search(store, settings, q, limit)})


@api.get("/sites/{site_id}.{fmt}", response_class=Response,
         responses={200: {"content": {m: {} for _, m in portal_uc.EXPORT_FORMATS.values()},
                          "description": "The site as a file."}})
async def site_download(store: StoreDep, site_id: Annotated[str, Path()],
                        fmt: Annotated[str, Path(description="geojson, gpkg or kml")]) -> Response:
    """One site (current extent and attributes, EPSG:4326) as GeoJSON, GeoPackage or KML; any other suffix
    (``/api/sites/1.5``) is a 400 naming the formats."""
    sid = site_id_path(site_id)
    portal_uc.check_export_format(fmt)
    data, media, filename = await run_in_threadpool(portal_uc.site_export, store, sid, fmt)
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@api.get("/sites/{site_id}/chips/{which}.png", response_class=Response,
         responses={200: {"content": {"image/png": {}}, "description": "A true-colour PNG."}})
async def site_chip(store: StoreDep, slot: HeavyDep, site_id: Annotated[int, Depends(site_id_path)],
                    which: Annotated[str, Path(description="before (earliest scene) or after (latest)")]) -> Response:
    """The site in true colour in the earliest (``before``) or latest (``after``) stored scene covering it."""
    portal_uc.check_chip(which)
    async with slot:
        png = await run_in_threadpool(portal_uc.chip_png, store, site_id, which)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=300"})


@api.get("/sites/{site_id}/report.html", response_class=HTMLResponse)
async def site_report_html(request: Request, store: StoreDep, lang: LangDep, slot: HeavyDep,
                           site_id: Annotated[int, Depends(site_id_path)]) -> HTMLResponse:
    """The site's evidence report as HTML (the same document as the PDF)."""
    async with slot:
        report = await run_in_threadpool(reports.site_report, store, site_id, lang.code, base_url(request))
    return page_response(report.html, lang)


@api.get("/sites/{site_id}/report.pdf", response_class=Response,
         responses={200: {"content": {"application/pdf": {}}, "description": "The evidence report."}})
async def site_report_pdf(request: Request, store: StoreDep, lang: LangDep, slot: HeavyDep,
                          site_id: Annotated[int, Depends(site_id_path)]) -> Response:
    """The site's evidence report as PDF: map and image chips, coordinates, admin position, protected areas,
    history, method, model, scenes, licences, generation time and a stable document ID."""
    async with slot:
        report = await run_in_threadpool(reports.site_report, store, site_id, lang.code, base_url(request))
        pdf = await run_in_threadpool(reports.to_pdf, report.html)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{report.document_id}.pdf"', "Content-Language": lang.code})


def _area(store: Any, unit: str, year_from: str | None, year_to: str | None, lang: str) -> reports.Report:
    return reports.area_report(store, reports.check_unit(unit), reports.parse_year("from", year_from),
                               reports.parse_year("to", year_to), lang)


UnitQuery = Annotated[str, Query(description="oblast, raion, hromada or year")]
FromQuery = Annotated[str | None, Query(alias="from", description="First year (inclusive).")]
ToQuery = Annotated[str | None, Query(alias="to", description="Last year (inclusive).")]


@api.get("/reports/area.html", response_class=HTMLResponse)
async def area_report_html(store: StoreDep, lang: LangDep, unit: UnitQuery = "oblast", year_from: FromQuery = None,
                           year_to: ToQuery = None) -> HTMLResponse:
    """The disturbed-area report as HTML."""
    report = await run_in_threadpool(_area, store, unit, year_from, year_to, lang.code)
    return page_response(report.html, lang)


@api.get("/reports/area.pdf", response_class=Response,
         responses={200: {"content": {"application/pdf": {}}, "description": "The area report."}})
async def area_report_pdf(store: StoreDep, lang: LangDep, slot: HeavyDep, unit: UnitQuery = "oblast",
                          year_from: FromQuery = None, year_to: ToQuery = None) -> Response:
    """Disturbed area, new sites and area inside protected areas by ``unit`` for the years ``from``..``to``;
    without a period its totals are those of ``GET /api/stats?by=unit``."""
    async with slot:
        report = await run_in_threadpool(_area, store, unit, year_from, year_to, lang.code)
        pdf = await run_in_threadpool(reports.to_pdf, report.html)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{report.document_id}.pdf"', "Content-Language": lang.code})
