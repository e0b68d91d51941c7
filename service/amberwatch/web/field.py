"""Field checks: the offline phone app (PWA) at ``/field/``, the sites assigned to a field team, and the
idempotent upload ``POST /api/field-checks`` (docs/validation.md#field-checks)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import Principal
from amberwatch.errors import NotFoundError, PayloadTooLargeError
from amberwatch.usecases import field_checks as uc
from amberwatch.validation import field
from amberwatch.web.deps import MAX_ID, SettingsDep, StoreDep, require

router = APIRouter(tags=["field checks"])
FieldTeam = Annotated[Principal, Depends(require("field_check"))]
Analyst = Annotated[Principal, Depends(require("decide"))]
APP_DIR = Path(__file__).resolve().parents[1] / "portal" / "field"
# the app shell: name -> media type
APP_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "application/javascript; charset=utf-8",
             "sw.js": "application/javascript; charset=utf-8", "manifest.webmanifest": "application/manifest+json",
             "icon.svg": "image/svg+xml", "field.css": "text/css; charset=utf-8"}
CHUNK = 1 << 16


@router.get("/field", include_in_schema=False)
def field_root() -> RedirectResponse:
    return RedirectResponse("/field/", status_code=308)


@router.get("/field/", include_in_schema=False)
def field_app() -> Response:
    return _app_file("index.html")


@router.get("/field/{name}", include_in_schema=False)
def field_file(name: str) -> Response:
    return _app_file(name)


def _app_file(name: str) -> Response:
    if name not in APP_FILES:
        raise NotFoundError(f"no file {name[:40]!r} in the field app")
    # no-cache: the service worker decides what is served offline; it revalidates every time it is online
    return FileResponse(APP_DIR / name, media_type=APP_FILES[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/api/field/form")
def field_form() -> dict[str, Any]:
    """Public: the observed states and the 1-5 disturbance scale (English and Ukrainian) the form offers."""
    return {"states": list(field.STATES),
            "disturbance_scale": {str(k): {"en": en, "uk": uk} for k, (en, uk) in field.DISTURBANCE_SCALE.items()}}


@router.get("/api/field/sites")
async def field_sites(store: StoreDep, principal: FieldTeam) -> list[dict[str, Any]]:
    """The sites assigned to this key (or to every field team), with outline and centroid."""
    return await run_in_threadpool(uc.assigned_sites, store, principal)


class AssignIn(BaseModel):
    site_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(..., min_length=1, max_length=1000)
    assignee: str | None = Field(None, max_length=100, description="A field team's key name; null = every team.")


@router.post("/api/field/assignments", status_code=201)
async def post_assignments(body: AssignIn, store: StoreDep, principal: Analyst) -> dict[str, int]:
    """Give sites to a field team (analysts)."""
    n = await run_in_threadpool(uc.assign, store, principal, body.site_ids, body.assignee)
    return {"assigned": n}


@router.post("/api/field-checks", status_code=201,
             responses={200: {"description": "This UUID was stored before: nothing new is stored."}})
async def post_field_check(
    store: StoreDep, settings: SettingsDep, principal: FieldTeam,
    id: Annotated[str, Form(max_length=36, description="A UUID the phone generated for this check.")],
    site_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    checked_on: Annotated[date, Form(description="Date of the visit (YYYY-MM-DD).")],
    observer: Annotated[str, Form(min_length=1, max_length=200)],
    state: Annotated[str, Form(description="active, abandoned, recultivated or not_mining")],
    disturbance: Annotated[int, Form(ge=1, le=5, description="1-5 (docs/validation.md#disturbance-scale)")],
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    accuracy_m: Annotated[float | None, Form(ge=0, le=100_000)] = None,
    notes: Annotated[str | None, Form(max_length=uc.MAX_TEXT)] = None,
    photos: Annotated[list[UploadFile] | None, File(description="JPEG or PNG photos.")] = None,
) -> JSONResponse:
    """Store a field check. The phone's UUID makes it idempotent: sending the same check again (a retry after a
    lost answer) stores nothing and answers 200 with the same id; the first time answers 201."""
    files = [(f.filename or "photo", await _read_capped(f, settings.field_photo_max_mb << 20))
             for f in (photos or [])]
    check = uc.FieldCheckIn(id=id, site_id=site_id, checked_on=checked_on, observer=observer, state=state,
                            disturbance=disturbance, lon=lon, lat=lat, accuracy_m=accuracy_m, notes=notes)
    out, created = await run_in_threadpool(uc.submit, store, settings, principal, check, files)
    return JSONResponse(out, status_code=201 if created else 200)


async def _read_capped(f: UploadFile, cap: int) -> bytes:
    parts, size = [], 0
    while chunk := await f.read(CHUNK):
        size += len(chunk)
        if size > cap:
            raise PayloadTooLargeError(f"{(f.filename or 'photo')[:80]}: larger than {cap >> 20} MB")
        parts.append(chunk)
    return b"".join(parts)


@router.get("/api/field-checks/{check_id}/photos/{n}.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
async def field_photo(check_id: Annotated[str, PathParam(max_length=36)], n: Annotated[int, PathParam(ge=0, le=99)],
                      store: StoreDep, settings: SettingsDep) -> Response:
    """A photo of a field check (re-encoded, without metadata)."""
    path = await run_in_threadpool(uc.photo_path, store, settings, check_id, n)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})
