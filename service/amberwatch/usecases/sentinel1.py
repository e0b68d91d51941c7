"""Sentinel-1 into tracking: compare two radar dates and store the change, then recompute the sites.

``record_s1_pair(store, settings, before, after)`` ingests both dates (``ingest.ingest_s1``: RTC/backscatter GeoTIFFs
or GRD .SAFE), runs the s1-water model and the log-ratio change (``sar.pair``), stores the change polygons
(``sar_observations``/``sar_changes``) and recomputes every site: on the dates Sentinel-2 did not observe a site,
the radar change in its envelope is evidence (docs/monitoring.md, "Sentinel-1 evidence on cloudy dates").
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from amberwatch.detect.registry import list_models, newest
from amberwatch.errors import InputError
from amberwatch.ingest import IngestLimits, ingest_s1
from amberwatch.sar.pair import compare_scenes
from amberwatch.sar.water import WATER_MODEL, WaterModel
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import sar as sar_q
from amberwatch.track import rebuild_sites

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SarRecord:
    observation_id: int
    scene_key: str
    acquired: datetime
    threshold_db: float
    changed_fraction: dict[str, float]
    events: int  # new site events the radar date produced


def water_model(settings: Settings) -> WaterModel:
    """The newest ``s1-water`` model of the registry, on the configured providers; one session per model file."""
    model = newest(list_models(settings.models_dir), WATER_MODEL)
    if model is None or not model.onnx_path.is_file():
        raise InputError(f"the {WATER_MODEL} model is not in the model registry ({settings.models_dir.name})")
    return _water_session(model.onnx_path, tuple(settings.providers) if settings.providers else None)


@functools.lru_cache(maxsize=4)
def _water_session(onnx_path: Path, providers: tuple[str, ...] | None) -> WaterModel:
    return WaterModel(onnx_path, list(providers) if providers else None)


def record_s1_pair(store: Store, settings: Settings, before: list[Path], after: list[Path]) -> SarRecord:
    """Compare two Sentinel-1 dates of one grid, store the change and recompute the sites."""
    limits = IngestLimits.from_settings(settings)
    first, second = ingest_s1(before, limits), ingest_s1(after, limits)
    result = compare_scenes(first, second, water_model(settings))
    with store.session() as session:
        obs_id = sar_q.save_observation(
            session, scene_key=second.scene_key, before_scene_key=first.scene_key, sensor=second.sensor,
            acquired=second.acquired, footprint=result.footprint, polarisation=result.change.polarisation,
            threshold_db=result.change.threshold_db, changes=result.polygons)
        events = rebuild_sites(session)
    log.info("Sentinel-1 %s vs %s stored as observation %d (%d new site events)", second.scene_key,
             first.scene_key, obs_id, len(events))
    fractions = {name: result.change.fraction(name) for name in
                 ("water_appeared", "water_disappeared", "decrease", "increase")}
    return SarRecord(obs_id, second.scene_key, second.acquired, result.change.threshold_db, fractions, len(events))


@dataclass(frozen=True)
class WaterMap:
    scene_key: str
    thresholds_db: dict[str, float]
    how: dict[str, str]
    water_fraction: float
    out: Path


def water_map(settings: Settings, paths: list[Path], out: Path) -> WaterMap:
    """Open water of one Sentinel-1 scene as a uint8 GeoTIFF (1 water, 0 not, 255 no data) at ``out``."""
    import numpy as np
    import rasterio

    from amberwatch.sar.water import filtered_db, learn_thresholds, water_mask

    if out.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"{out.name}: the water map is written as a GeoTIFF (.tif)")
    scene = ingest_s1(paths, IngestLimits.from_settings(settings))
    db = filtered_db(scene)
    thresholds = learn_thresholds([db])
    prob = water_model(settings).probability(db, thresholds)
    water = water_mask(prob)
    data = np.where(np.isfinite(prob), water.astype(np.uint8), 255).astype(np.uint8)
    grid = scene.grid
    with rasterio.open(out, "w", driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="uint8",
                       crs=grid.crs, transform=grid.transform, nodata=255, compress="deflate") as dst:
        dst.write(data, 1)
        dst.update_tags(VALUES="1 = open water, 0 = not water, 255 = no data", SCENE_KEY=scene.scene_key,
                        THRESHOLDS_DB=", ".join(f"{p}={v:.2f}" for p, v in thresholds.db.items()))
    valid = np.isfinite(prob)
    fraction = float(water[valid].mean()) if valid.any() else 0.0
    return WaterMap(scene.scene_key, thresholds.db, thresholds.how, fraction, out)
