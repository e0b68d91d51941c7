"""Detection runtime: registered ONNX models -> probability COG -> pit/pond polygons.

Entry points: :func:`detect_scene`, :func:`write_polygons`, :func:`get_model` / :func:`list_models`.
VHR RGB models (family ``vhr_rgb``) run through ``amberwatch.vhr.detect_vhr``: the run use case picks one of the
two by the model's family (``amberwatch.vhr`` builds on this package, never the reverse).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
import shapely

from amberwatch.detect.clearsky import clear_sky_footprint
from amberwatch.detect.decision import DecisionRule
from amberwatch.detect.registry import ModelInfo, get_model, list_models
from amberwatch.detect.segment import (
    Progress,
    cached_runner,
    check_segmentation_model,
    context_margin,
    predict_probabilities,
    result_parameters,
)
from amberwatch.detect.session import create_session
from amberwatch.detect.vectorize import StripVectorizer, vectorize
from amberwatch.settings import Settings
from amberwatch.types import DetectionResult, IngestedScene
from amberwatch.vector_out import write_vector

__all__ = [
    "DecisionRule",
    "ModelInfo",
    "clear_sky_footprint",
    "create_session",
    "detect_scene",
    "get_model",
    "list_models",
    "predict_probabilities",
    "vectorize",
    "write_polygons",
]

log = logging.getLogger(__name__)

SEGMENT_SHARE = 0.9  # share of the progress bar given to segmentation (vectorizing is the rest)


def detect_scene(
    scene: IngestedScene,
    model: ModelInfo,
    work_dir: Path,
    settings: Settings,
    progress: Progress | None = None,
    rule: DecisionRule | None = None,
) -> DetectionResult:
    """Run ``model`` on ``scene``: probability COG in ``work_dir`` + polygons (EPSG:4326), vectorized window by
    window as the model runs (:class:`~amberwatch.detect.vectorize.StripVectorizer`: the COG is not read back).

    Segmentation models only (VHR RGB models: ``amberwatch.vhr.detect_vhr``). ``progress(fraction, message)`` is
    called as windows complete (segmentation takes the first 90 %). ``rule`` defaults to the model card's decision
    rule. The result carries the scene's clear-sky footprint (:func:`clear_sky_footprint`) for site tracking.
    """
    check_segmentation_model(model, scene, "run it with amberwatch.vhr.detect_vhr")
    work_dir = Path(work_dir)
    prob_path = work_dir / f"{scene.scene_key}__{model.name}-{model.version}__prob.tif"
    segment_progress = (lambda f, msg: progress(SEGMENT_SHARE * f, msg)) if progress else None
    margin = context_margin(model)
    rule = rule or model.decision
    with rasterio.open(scene.reflectance_path) as src:  # header only: the grid the windows are vectorized on
        strips = StripVectorizer(src.width, src.height, src.transform, src.crs.to_wkt() if src.crs else scene.crs,
                                 rule, min_area_ha=settings.min_mapping_unit_ha)
    predict_probabilities(scene, model, prob_path, settings, progress=segment_progress, margin=margin,
                          sink=strips.add)
    if progress:
        progress(SEGMENT_SHARE, "vectorizing")
    polygons = strips.polygons()
    clear_sky = clear_sky_footprint(scene.cloud_mask_path)
    if progress:
        progress(1.0, f"{len(polygons)} polygons")
    provider = cached_runner(
        str(model.onnx_path), model.sha256, tuple(settings.providers) if settings.providers else None
    ).provider
    return DetectionResult(
        scene_key=scene.scene_key,
        model_name=model.name,
        model_version=model.version,
        observed_at=scene.acquired,
        polygons=polygons,
        probability_path=prob_path,
        provider=provider,
        clear_sky=clear_sky,
        parameters=result_parameters(rule, settings, model),
    )


def write_polygons(result: DetectionResult, path: Path) -> Path:
    """Write the result's polygons to ``.gpkg`` or ``.geojson`` (EPSG:4326) with columns class, area_ha,
    confidence, observed_at (ISO 8601 UTC), model, model_version."""
    path = Path(path)
    n = len(result.polygons)
    geoms = [p.geometry for p in result.polygons]
    multi = any(g.geom_type == "MultiPolygon" for g in geoms)
    columns = {
        "class": np.array([p.cls for p in result.polygons], dtype=object),
        "area_ha": np.array([p.area_ha for p in result.polygons], dtype=np.float64),
        "confidence": np.array([p.confidence for p in result.polygons], dtype=np.float64),
        "observed_at": np.array([result.observed_at.isoformat()] * n, dtype=object),
        "model": np.array([result.model_name] * n, dtype=object),
        "model_version": np.array([result.model_version] * n, dtype=object),
    }
    wkb = shapely.to_wkb(np.array(geoms, dtype=object)) if n else np.array([], dtype=object)
    write_vector(path, "detections", columns, wkb, "MultiPolygon" if multi else "Polygon", promote_to_multi=multi)
    log.info("wrote %d polygons to %s", n, path)
    return path
