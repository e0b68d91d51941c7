"""Use cases for scenes: check a server-side path, ingest and store a scene, look one up."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Polygon

from amberwatch.errors import ForbiddenPathError, InputError, NotFoundError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Scene
from amberwatch.store.queries import scenes as scene_queries
from amberwatch.types import IngestedScene, Progress, noop_progress

log = logging.getLogger(__name__)


# -- paths ---------------------------------------------------------------------------------------
def check_allowed(path: Path, settings: Settings) -> Path:
    """Resolve ``path`` and make sure it lies under one of ``settings.allowed_roots`` (server-side paths)."""
    resolved = path.expanduser().resolve()
    roots = [r.expanduser().resolve() for r in settings.allowed_roots]
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise ForbiddenPathError(
            f"{path.name or 'that path'}: not under an allowed root; upload the file instead "
            "(the operator sets AMBERWATCH_ALLOWED_ROOTS)"
        )
    return resolved


# -- ingest --------------------------------------------------------------------------------------
def scene_from_row(row: Scene) -> IngestedScene:
    """Rebuild the stage interface object from a stored scene."""
    from shapely import wkb

    return IngestedScene(
        scene_key=row.scene_key, sensor=row.sensor, family=row.family, level=row.level,  # type: ignore[arg-type]
        acquired=row.acquired, bands=list(row.bands), resolution=row.resolution, crs=row.crs,
        bounds=_bounds(row), footprint_wgs84=wkb.loads(bytes(row.footprint.data)),
        reflectance_path=Path(row.reflectance_path),
        cloud_mask_path=Path(row.cloud_mask_path) if row.cloud_mask_path else None,
        source=row.source, cloud_fraction=row.cloud_fraction, stac_item=row.stac_item,
    )


def _bounds(row: Scene) -> tuple[float, float, float, float]:
    if not row.bounds or len(row.bounds) != 4:
        raise InputError(f"scene {row.scene_key} has no stored grid bounds: ingest it again")
    x0, y0, x1, y1 = (float(v) for v in row.bounds)
    return x0, y0, x1, y1


def ingest(store: Store, settings: Settings, path: Path, progress: Progress = noop_progress) -> Scene:
    """Ingest a scene from ``path`` and store it; a scene already ingested (same key) is returned as is."""
    from amberwatch.ingest import IngestLimits, ingest_path, plan_input

    if not path.exists():
        raise InputError(f"{path.name or path}: no such file or directory")
    limits = IngestLimits.from_settings(settings)  # size limits of untrusted input (AMBERWATCH_MAX_*)
    key = plan_input(path, limits).scene_key  # recognition only: cheap, and it validates the input
    with store.session() as session:
        existing = scene_queries.by_key(session, key)
        if existing is not None and Path(existing.reflectance_path).exists():
            log.info("scene %s already ingested (id %d): reusing it", key, existing.id)
            progress(1.0, f"{key} already ingested")
            return existing
    staging = settings.path("scenes", f".staging-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    try:
        scene = ingest_path(path, staging, progress=progress, limits=limits, l1c_cloud_mask=settings.l1c_cloud_mask)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with store.session() as session:
        existing = scene_queries.by_key(session, scene.scene_key)
        if existing is not None and Path(existing.reflectance_path).exists():  # ingested meanwhile by another call
            shutil.rmtree(staging, ignore_errors=True)
            log.info("scene %s already ingested (id %d): reusing it", scene.scene_key, existing.id)
            return existing
        final = settings.path("scenes", scene.scene_key)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        scene.reflectance_path = final / scene.reflectance_path.name
        if scene.cloud_mask_path is not None:
            scene.cloud_mask_path = final / scene.cloud_mask_path.name
        # a stored scene whose files were lost keeps its id (runs refer to it) and gets the fresh files
        row = existing or Scene(scene_key=scene.scene_key)
        row.sensor, row.family, row.level, row.acquired = scene.sensor, scene.family, scene.level, scene.acquired
        row.resolution, row.crs, row.bands = scene.resolution, scene.crs, list(scene.bands)
        row.cloud_fraction, row.source = scene.cloud_fraction, scene.source
        row.footprint = from_shape(as_multipolygon(scene.footprint_wgs84), srid=4326)
        row.bounds = [float(v) for v in scene.bounds]
        row.reflectance_path = str(scene.reflectance_path)
        row.cloud_mask_path = str(scene.cloud_mask_path) if scene.cloud_mask_path else None
        row.stac_item = _stac_with_paths(scene, final)
        scene_queries.save(session, row)
        log.info("ingested %s as scene %d", scene.scene_key, row.id)
        return row


def _stac_with_paths(scene: IngestedScene, final: Path) -> dict:
    item = dict(scene.stac_item or {})
    props = dict(item.get("properties", {}))
    props.setdefault("proj:bbox", list(scene.bounds))
    item["properties"] = props
    for asset in (item.get("assets") or {}).values():
        href = asset.get("href")
        if href:
            asset["href"] = str(final / Path(href).name)
    return item


def get_scene(store: Store, ref: str | int) -> Scene:
    """A stored scene by numeric id or scene key."""
    with store.session() as session:
        if isinstance(ref, int) or str(ref).isdigit():
            row = scene_queries.by_id(session, int(ref))
        else:
            row = scene_queries.by_key(session, str(ref))
        if row is None:
            raise NotFoundError(f"scene {ref!r} not found")
        return row



def as_multipolygon(geom) -> MultiPolygon:  # noqa: ANN001
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]
    return MultiPolygon(polys)


def list_scenes(store: Store, limit: int, offset: int) -> list[Scene]:
    with store.session() as session:
        return scene_queries.page(session, limit, offset)


def public_stac(row: Scene) -> dict:
    """The scene's STAC item for the public: asset hrefs by file name (no server paths)."""
    item = dict(row.stac_item or {})
    assets = {}
    for key, asset in (item.get("assets") or {}).items():
        asset = dict(asset)
        if asset.get("href"):
            asset["href"] = Path(str(asset["href"])).name
        assets[key] = asset
    item["assets"] = assets
    props = dict(item.get("properties") or {})
    if props.get("amberwatch:source"):
        props["amberwatch:source"] = Path(str(props["amberwatch:source"])).name
    item["properties"] = props
    return item
