"""Our scenes, runs and models as a STAC API (pgstac behind /stac, docs/operations.md#the-stac-api-at-stac).

Three collections: ``amberwatch-scenes`` (every ingested scene, its eo/projection/raster item), ``amberwatch-runs``
(every published detection run, with links to its detections in OGC API Features and WFS) and ``amberwatch-models``
(the model registry: each version's MLM card). ``publish_run`` upserts a run's item and its scene's as soon as the
run is published (``usecases.runs.publish_result``, which every monitor item's run goes through), ``publish_models``
the registry when the app starts; ``sync`` upserts them all (idempotent, repairs what a failed hook missed) on
``amberwatch stac sync`` / ``POST /api/stac/sync``.
``publish_items`` loads external items (tests, operators mirroring a source catalogue).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shapely import wkb
from shapely.geometry import box, mapping
from sqlalchemy.orm import Session

from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Run, Scene
from amberwatch.store.queries import stac_catalog as q
from amberwatch.usecases.scenes import public_stac

log = logging.getLogger(__name__)
SCENES, RUNS, MODELS = "amberwatch-scenes", "amberwatch-runs", "amberwatch-models"
REGION = box(23.0, 49.5, 31.0, 52.5)  # Volyn, Rivne, Zhytomyr: where the models are meant to be used
MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"


def collection(cid: str, description: str, bbox: list[float], start: str | None,
               extensions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": cid, "description": description,
        "stac_extensions": extensions or [], "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[start, None]]}},
        "links": [], **extra,
    }


def stac_datetime(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def scene_and_run_collections(start: str | None, bbox: list[float] | None = None) -> list[dict[str, Any]]:
    """``amberwatch-scenes`` and ``amberwatch-runs``: their temporal extent from ``start`` (the oldest scene), their
    spatial extent ``bbox`` (all scenes' footprints; the whole world without scenes)."""
    box = bbox or [-180.0, -90.0, 180.0, 90.0]
    return [collection(SCENES, "Scenes ingested by AmberWatch (reflectance and cloud mask COGs on the common grid).",
                       box, start),
            collection(RUNS, "Published detection runs of AmberWatch: amber-mining pits and ponds per scene.",
                       box, start)]


def scene_item(row: Scene, base: str) -> dict[str, Any]:
    item = public_stac(row)
    item.update(id=row.scene_key, collection=SCENES, type="Feature", stac_version=item.get("stac_version", "1.0.0"))
    footprint = wkb.loads(bytes(row.footprint.data))
    item["geometry"], item["bbox"] = mapping(footprint), list(footprint.bounds)
    props = dict(item.get("properties") or {})
    props["datetime"] = stac_datetime(row.acquired)
    item["properties"] = props
    item["links"] = [{"rel": "via", "href": f"{base}/api/scenes/{row.id}", "type": "application/json"}]
    return item


def run_item(run: Run, base: str) -> dict[str, Any] | None:
    if not run.scenes:
        return None
    scene = run.scenes[0]
    footprint = wkb.loads(bytes(scene.footprint.data))
    mv = run.model_version
    props = {
        "datetime": stac_datetime(scene.acquired),
        "amberwatch:run_id": run.id, "amberwatch:scene": scene.scene_key,
        "amberwatch:model": f"{mv.name}@{mv.version}" if mv else None, "amberwatch:n_detections": run.n_detections,
        "amberwatch:published_at": run.published_at.isoformat() if run.published_at else None,
    }
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": f"run-{run.id}",
        "collection": RUNS, "geometry": mapping(footprint), "bbox": list(footprint.bounds), "properties": props,
        "links": [{"rel": "via", "href": f"{base}/api/runs/{run.id}", "type": "application/json"},
                  {"rel": "derived_from", "href": f"{base}/stac/collections/{SCENES}/items/{scene.scene_key}",
                   "type": "application/geo+json"}],
        "assets": {
            "detections": {"href": f"{base}/ogcapi/collections/detections/items?run_id={run.id}&f=json",
                           "type": "application/geo+json", "roles": ["data"],
                           "title": "Detections of this run (OGC API Features)"},
            "wfs": {"href": f"{base}/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=detections"
                            f"&FILTER=<Filter><PropertyIsEqualTo><ValueReference>run_id</ValueReference>"
                            f"<Literal>{run.id}</Literal></PropertyIsEqualTo></Filter>",
                    "type": "application/gml+xml; version=3.2", "roles": ["data"], "title": "Detections (WFS 2.0)"},
        },
    }


def model_item(name: str, version: str, card: dict[str, Any], base: str) -> dict[str, Any]:
    """The registry's MLM card as an item of ``amberwatch-models`` (its model file is not served)."""
    props = dict(card.get("properties") or card)
    props.setdefault("datetime", None)
    if not props.get("datetime") and not props.get("start_datetime"):
        props["datetime"] = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": sorted(set(card.get("stac_extensions") or []) | {MLM_SCHEMA}),
        "id": f"{name}-{version}", "collection": MODELS, "geometry": mapping(REGION), "bbox": list(REGION.bounds),
        "properties": props,
        "links": [{"rel": "via", "href": f"{base}/api/models", "type": "application/json"}],
        "assets": {k: {**v, "href": f"{name}/{version}/{str(v.get('href', '')).lstrip('./')}"}
                   for k, v in (card.get("assets") or {}).items() if isinstance(v, dict)},
    }


def sync(store: Store, settings: Settings) -> dict[str, int]:
    """Upsert the three collections and all their items (scenes, published runs, model versions)."""
    base = settings.base_url
    models = model_items(settings)
    with store.session() as session:
        scenes = [scene_item(s, base) for s in q.scenes(session)]
        runs = [i for i in (run_item(r, base) for r in q.published_runs(session)) if i is not None]
        _upsert_scene_and_run_collections(session)
        q.upsert_items(session, scenes)
        q.upsert_items(session, runs)
        _upsert_models(session, models)
    log.info("STAC API: %d scenes, %d runs, %d models", len(scenes), len(runs), len(models))
    return {"scenes": len(scenes), "runs": len(runs), "models": len(models)}


def model_items(settings: Settings) -> list[dict[str, Any]]:
    """Every model version of the registry (``settings.models_dir``) as an MLM item."""
    from amberwatch.detect.registry import list_models

    return [model_item(m.name, m.version, m.card, settings.base_url) for m in list_models(settings.models_dir)]


def _upsert_scene_and_run_collections(session: Session) -> None:
    """Both collections: their temporal extent starting at the oldest scene, their spatial extent around all scenes."""
    first = q.first_acquired(session)
    for coll in scene_and_run_collections(None if first is None else stac_datetime(first), q.scenes_bbox(session)):
        q.upsert_collection(session, coll)


def _upsert_models(session: Session, models: list[dict[str, Any]]) -> None:
    q.upsert_collection(session, collection(
        MODELS, "The AmberWatch model registry: each model version's STAC MLM card.", list(REGION.bounds),
        None, [MLM_SCHEMA], summaries={"mlm:framework": ["onnxruntime"]}))
    q.upsert_items(session, models)


def publish_models(store: Store, settings: Settings) -> int:
    """When the app starts with /stac: the model registry's versions into ``amberwatch-models`` (the registry is
    files; it changes between deployments, not between runs). Never raises: a failure is a warning
    (``amberwatch stac sync`` repairs). How many items were upserted (0 without pgstac)."""
    if not settings.stac_api:
        return 0
    try:
        models = model_items(settings)
        with store.session() as session:
            if not q.pgstac_present(session):
                return 0
            _upsert_models(session, models)
    except Exception:
        log.warning("the model registry is not in the STAC API at /stac (`amberwatch stac sync` adds it)",
                    exc_info=True)
        return 0
    log.info("STAC API: %d model versions upserted", len(models))
    return len(models)


def publish_run(store: Store, settings: Settings, run_id: int) -> bool:
    """After a run is published: upsert its item and its scene's (and their two collections) into /stac, when the
    STAC API is served and the pgstac schema is there. Never raises: a failure is logged as a warning naming the
    run (the run stays published; ``amberwatch stac sync`` repairs). True when the items were upserted."""
    if not settings.stac_api:
        return False
    try:
        return _upsert_run(store, settings.base_url, run_id)
    except Exception:
        log.warning("run %d is published but not in the STAC API at /stac (`amberwatch stac sync` adds it)", run_id,
                    exc_info=True)
        return False


def _upsert_run(store: Store, base: str, run_id: int) -> bool:
    with store.session() as session:
        if not q.pgstac_present(session):
            log.info("run %d: no pgstac schema in this database, nothing added to /stac", run_id)
            return False
        runs = q.published_runs(session, run_id)
        item = run_item(runs[0], base) if runs else None
        if item is None:
            log.info("run %d is not published or has no scene: nothing added to /stac", run_id)
            return False
        run = runs[0]
        _upsert_scene_and_run_collections(session)
        q.upsert_items(session, [scene_item(s, base) for s in run.scenes])
        q.upsert_items(session, [item])
    log.info("STAC API: run %d and its scene upserted", run_id)
    return True


def publish_items(store: Store, coll: dict[str, Any], items: list[dict[str, Any]]) -> int:
    """Load an external collection and its items into the STAC API (mirroring a source catalogue)."""
    cid = coll.get("id")
    if not isinstance(cid, str) or not cid or cid in (SCENES, RUNS, MODELS):
        raise InputError("collection: give an id that is not one of AmberWatch's own collections")
    if any(i.get("collection") != cid for i in items):
        raise InputError(f"every item must belong to collection {cid!r}")
    with store.session() as session:
        q.upsert_collection(session, coll)
        q.upsert_items(session, items)
    return len(items)
