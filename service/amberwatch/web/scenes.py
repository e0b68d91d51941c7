"""``/api/scenes``: list, read, STAC, and ingest (an upload or a server-side path; analysts and admins)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import Principal
from amberwatch.errors import InputError
from amberwatch.store.models import Scene
from amberwatch.usecases import scenes as scenes_uc
from amberwatch.web.deps import MAX_ID, PageDep, SettingsDep, StoreDep, require
from amberwatch.web.schemas import SceneOut, ScenePathIn

router = APIRouter(prefix="/api/scenes", tags=["scenes"])
UPLOAD_SUFFIXES = (".tif", ".tiff", ".zip", ".jp2")
SceneId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


@router.get("", response_model=list[SceneOut])
def list_scenes(store: StoreDep, page: PageDep) -> list[Scene]:
    return scenes_uc.list_scenes(store, page.limit, page.offset)


@router.get("/{scene_id}", response_model=SceneOut)
def get_scene(store: StoreDep, scene_id: SceneId) -> Scene:
    return scenes_uc.get_scene(store, scene_id)


@router.get("/{scene_id}/stac")
def get_scene_stac(store: StoreDep, scene_id: SceneId) -> dict:
    """The scene's STAC item."""
    return scenes_uc.public_stac(scenes_uc.get_scene(store, scene_id))


@router.post("", response_model=SceneOut, status_code=201,
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": ScenePathIn.model_json_schema()},
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}}}}}}})
async def post_scene(request: Request, store: StoreDep, settings: SettingsDep,
                     _: Annotated[Principal, Depends(require("ingest"))]) -> Scene:
    """Ingest a scene: upload one file (GeoTIFF, JPEG 2000 or zipped .SAFE) as multipart ``file``, or give a
    server-side ``path`` (JSON) under the allowed roots. Uploads over AMBERWATCH_MAX_UPLOAD_MB get a 413 before
    their body is stored."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            body = ScenePathIn.model_validate_json(await request.body())
        except ValueError as err:
            raise InputError('expected JSON {"path": "..."} with a non-empty path') from err
        path = scenes_uc.check_allowed(Path(body.path), settings)
        return await run_in_threadpool(scenes_uc.ingest, store, settings, path)
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("multipart upload needs a 'file' field")
        name = Path(upload.filename or "upload.tif").name
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            raise InputError(f"upload {name!r}: send a {', '.join(UPLOAD_SUFFIXES)} file")
        tmpdir = settings.path("uploads", uuid.uuid4().hex)
        tmpdir.mkdir(parents=True)
        try:
            target = tmpdir / name
            with open(target, "wb") as f:
                while chunk := await upload.read(1 << 20):
                    f.write(chunk)
            if target.stat().st_size == 0:
                raise InputError(f"uploaded file {name} is empty")
            return await run_in_threadpool(scenes_uc.ingest, store, settings, target)
        finally:
            await upload.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
    raise InputError("send multipart/form-data with a 'file' or application/json with a 'path'")
