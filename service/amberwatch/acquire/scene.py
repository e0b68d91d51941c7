"""Write one STAC item's area of interest as a local scene folder that ``amberwatch ingest`` accepts."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from amberwatch.acquire.bands import AssetPlan
from amberwatch.acquire.hosts import is_http
from amberwatch.acquire.search import PathCheck, fetch_bytes
from amberwatch.acquire.window import read_window
from amberwatch.errors import InputError
from amberwatch.ingest.safety import IngestLimits

MAX_TEXT_BYTES = 4 * 1024 * 1024  # a Landsat MTL is about 20 kB


def write_scene_folder(item: dict[str, Any], plan: AssetPlan, aoi: BaseGeometry, folder: Path, patterns: list[str],
                       check_path: PathCheck, limits: IngestLimits) -> Path:
    """Read every asset of ``plan`` over ``aoi`` into ``folder`` (created atomically; an existing one is reused)."""
    if folder.exists():
        return folder
    staging = folder.parent / f".{folder.name}.part-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        for name, href in plan.texts.items():
            if is_http(href):
                data = fetch_bytes(href, patterns, limit=MAX_TEXT_BYTES)
            else:
                path = check_path(Path(href))
                if path.stat().st_size > MAX_TEXT_BYTES:
                    raise InputError(f"{path.name} is larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB")
                data = path.read_bytes()
            (staging / name).write_bytes(data)
        for name, href in plan.rasters.items():
            if not read_window(href, aoi, staging / name, patterns, check_path, limits):
                raise InputError(f"item {item.get('id')}: asset {name} does not cover the area of interest")
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
