"""Sentinel-1 into tracking: compare two radar dates and store the change, then recompute the sites.

``record_s1_pair(store, settings, before, after)`` ingests both dates (``ingest.ingest_s1``: RTC/backscatter GeoTIFFs
or GRD .SAFE), runs the s1-water model and the log-ratio change (``sar.pair``), stores the change polygons
(``sar_observations``/``sar_changes``) and recomputes every site: on the dates Sentinel-2 did not observe a site,
the radar change in its envelope is evidence (docs/monitoring.md, "Sentinel-1 evidence on cloudy dates").
"""

from __future__ import annotations

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
    model = newest(list_models(settings.models_dir), WATER_MODEL)
    if model is None or not model.onnx_path.is_file():
        raise InputError(f"the {WATER_MODEL} model is not in the model registry ({settings.models_dir.name})")
    return WaterModel(model.onnx_path)


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
