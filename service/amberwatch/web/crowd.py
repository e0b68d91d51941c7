"""Crowd reports: ``POST /api/reports`` (anonymous, multipart), the moderation queue and decisions (role
``moderator``), approved reports and their media for everyone. Docs: README "Report mining", docs/operations.md."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from amberwatch import portal
from amberwatch.accounts import Principal
from amberwatch.crowd.media import safe_name
from amberwatch.errors import InputError
from amberwatch.usecases import crowd
from amberwatch.web.deps import MAX_ID, PageDep, SettingsDep, StoreDep, get_principal, require
from amberwatch.web.portal import LangDep, common_context, page_response, static_url

router = APIRouter(prefix="/api/reports", tags=["crowd reports"])
PUBLIC_WRITES = ("create_report",)  # anonymous callers may send reports (docs/security.md)
HONEYPOT = "website"  # hidden in the form: people leave it empty, form-filling bots do not
FIELDS = ("lon", "lat", "text", "observed_at", "contact", "share_location", "location_source", HONEYPOT, "files")
ReportId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The report's id.")]
MediaId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The media's id.")]
MEDIA_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Content-Disposition": "inline"}

_FORM_SCHEMA = {"type": "object", "required": ["text", "files"], "properties": {
    "lon": {"type": "number", "description": "Longitude (WGS 84) of what you saw; with lat. Omit both to use a "
            "photo's GPS position."},
    "lat": {"type": "number", "description": "Latitude (WGS 84)."},
    "text": {"type": "string", "maxLength": crowd.MAX_TEXT, "description": "What you saw."},
    "observed_at": {"type": "string", "format": "date-time", "description": "When (default: unknown)."},
    "contact": {"type": "string", "maxLength": crowd.MAX_CONTACT,
                "description": "How moderators may reach you (never public; deleted after the retention period)."},
    "share_location": {"type": "boolean", "default": False,
                       "description": "true: a GPS position in a photo may stay in the published photo."},
    "location_source": {"type": "string", "enum": ["map", "gps"], "description": "How lon/lat were chosen."},
    "files": {"type": "array", "items": {"type": "string", "format": "binary"},
              "description": "Photos (JPEG, PNG, WebP, HEIC) and short videos (MP4, WebM)."},
}}


class ReportCreated(BaseModel):
    id: int
    status: str
    duplicate: bool = Field(description="true: the same report was already received; nothing new was stored.")
    location_source: str
    lon: float
    lat: float
    media: list[dict[str, Any]]


class ModerationIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(None, max_length=crowd.MAX_REASON, description="Required to reject.")


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{name}: a text field, not a file")
    return value


def _number(form: Any, name: str) -> float | None:
    value = (_field(form, name) or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{name}: not a number ({value[:20]!r})") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InputError(f"{name}: not a finite number")
    return number


def _when(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError("observed_at: an ISO 8601 date or date-time, e.g. 2026-05-01T14:30+03:00") from None
    if when.tzinfo is None:
        raise InputError("observed_at: give a time zone (e.g. +03:00 or Z)")
    return when


def _bool(value: str | None) -> bool:
    if value is None or value.strip() == "":
        return False
    if value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise InputError("share_location: true or false")


async def _stage(files: list[UploadFile], staging: Path) -> list[crowd.Upload]:
    uploads = []
    for i, upload in enumerate(files):
        path = staging / f"upload-{i}"
        with open(path, "wb") as f:
            while chunk := await upload.read(1 << 20):
                f.write(chunk)
        uploads.append(crowd.Upload(path, safe_name(upload.filename)))
    return uploads


@router.post("", status_code=201, response_model=ReportCreated, operation_id="create_report",
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}},
             responses={202: {"description": "A duplicate: the earlier report's id; nothing new stored."},
                        400: {"description": "bad field"}, 413: {"description": "too large"},
                        415: {"description": "a file that is not a plain photo or video"},
                        429: {"description": "too many reports from this address"}})
async def create_report(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Report amber mining (no key needed): what you saw, where (``lon``/``lat``, or a photo's GPS position) and
    one or more photos or short videos. The report waits for a moderator before it is public. At most
    ``AMBERWATCH_RATE_LIMIT_REPORTS`` per address; files are checked by their content, photos re-encoded without
    metadata (a GPS position only with ``share_location=true``)."""
    client = request.client.host if request.client else "unknown"  # the guard holds it to rate_limit_reports
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InputError("send multipart/form-data with text, files and lon/lat")
    form = await request.form(max_files=settings.report_max_files, max_fields=len(FIELDS) + 4,
                              max_part_size=64 << 10)
    staging = await run_in_threadpool(crowd.staging_dir, settings)
    try:
        unknown = sorted(set(form.keys()) - set(FIELDS))
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(k[:40] for k in unknown[:5])}")
        if (_field(form, HONEYPOT) or "").strip():
            raise InputError(f"the field {HONEYPOT!r} must be empty")
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if len(files) != len(form.getlist("files")):
            raise InputError("files: send files, not text")
        uploads = await _stage(files, staging)
        result = await run_in_threadpool(
            lambda: crowd.submit(store, settings, text=_field(form, "text") or "", uploads=uploads,
                                 lon=_number(form, "lon"), lat=_number(form, "lat"),
                                 observed_at=_when(_field(form, "observed_at")), contact=_field(form, "contact"),
                                 share_location=_bool(_field(form, "share_location")),
                                 location_source=(_field(form, "location_source") or "").strip() or None,
                                 client=client))
    finally:
        await form.close()
        await run_in_threadpool(crowd.discard_staging, staging)
    body = ReportCreated(id=result.id, status=result.status, duplicate=result.duplicate,
                         location_source=result.location_source, lon=result.lon, lat=result.lat,
                         media=result.media)
    return JSONResponse(body.model_dump(), status_code=202 if result.duplicate else 201,
                        headers={"Location": f"/api/reports/{result.id}"})


StatusQuery = Annotated[str, Query(description="approved (public), pending or rejected (moderators).")]


@router.get("")
async def list_reports(store: StoreDep, page: PageDep, principal: Annotated[Principal, Depends(get_principal)],
                       status: StatusQuery = "approved") -> list[dict]:
    """Reports by status: approved ones for everyone (no personal data); the moderation queue
    (``?status=pending``, oldest first) and rejected reports (with their reasons) need a moderator key."""
    crowd.check_status(status)
    moderator = principal.may("moderate")
    if status != "approved" and not moderator:
        check = require("moderate")
        await check(principal)  # type: ignore[misc]
    return await run_in_threadpool(crowd.list_reports, store, status, page.limit, page.offset, moderator)


@router.get("/{report_id:int}")
async def get_report(store: StoreDep, report_id: ReportId,
                     principal: Annotated[Principal, Depends(get_principal)]) -> dict:
    """One approved report (any report, with contact and moderation, for moderators)."""
    return await run_in_threadpool(crowd.get_report, store, report_id, principal.may("moderate"))


@router.post("/{report_id:int}/moderation", operation_id="moderate_report")
async def moderate_report(store: StoreDep, settings: SettingsDep, report_id: ReportId, body: ModerationIn,
                          principal: Annotated[Principal, Depends(require("moderate"))]) -> dict:
    """Approve or reject a report (moderators). Approved reports appear in the ``reports`` layer (WMS, WFS, OGC API
    Features) and on the pages of sites within 1 km; rejected ones keep their reason and are never public."""
    return await run_in_threadpool(crowd.moderate, store, settings, report_id, body.decision, body.reason,
                                   principal.name)


async def _media(store: Any, settings: Any, report_id: int, media_id: int, poster: bool,
                 principal: Principal) -> FileResponse:
    moderator = principal.may("moderate")
    path, media_type = await run_in_threadpool(crowd.media_file, store, settings, report_id, media_id, poster,
                                               moderator)
    cache = "private, no-store" if moderator else "public, max-age=300"
    return FileResponse(path, media_type=media_type, headers={**MEDIA_HEADERS, "Cache-Control": cache})


@router.get("/{report_id:int}/media/{media_id:int}", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}, "video/webm": {}}}})
async def report_media(store: StoreDep, settings: SettingsDep, report_id: ReportId, media_id: MediaId,
                       principal: Annotated[Principal, Depends(get_principal)]) -> FileResponse:
    """A photo (JPEG, re-encoded) or video of an approved report."""
    return await _media(store, settings, report_id, media_id, False, principal)


@router.get("/{report_id:int}/media/{media_id:int}/poster", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}})
async def report_media_poster(store: StoreDep, settings: SettingsDep, report_id: ReportId, media_id: MediaId,
                              principal: Annotated[Principal, Depends(get_principal)]) -> FileResponse:
    """The poster frame (JPEG) of a video of an approved report."""
    return await _media(store, settings, report_id, media_id, True, principal)


# -- portal pages: the report form and the moderation queue ----------------------------------------------
pages = APIRouter(include_in_schema=False)


@pages.get("/report", response_class=HTMLResponse)
def report_page(request: Request, store: StoreDep, settings: SettingsDep, lang: LangDep) -> HTMLResponse:
    """The phone-friendly report form."""
    from amberwatch.usecases import portal as portal_uc

    config = {**portal_uc.map_config(store, settings), "worker_url": static_url("js/maplibre-gl-worker.mjs")}
    limits = {"files": settings.report_max_files, "image_mb": settings.report_max_image_mb,
              "video_mb": settings.report_max_video_mb, "video_s": f"{settings.report_max_video_s:g}",
              "retention_days": settings.report_retention_days}
    return page_response(portal.render("report.html", lang.code, config=config, limits=limits,
                                       **common_context(request, lang)), lang)


@pages.get("/moderation", response_class=HTMLResponse)
def moderation_page(request: Request, lang: LangDep) -> HTMLResponse:
    """The moderation queue (the moderator's API key is entered in the page and kept in sessionStorage)."""
    return page_response(portal.render("moderation.html", lang.code, **common_context(request, lang)), lang)
