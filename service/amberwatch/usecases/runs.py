"""Use cases for detection runs: create, execute (detect -> change model -> store -> track -> publish), look up."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import procrastinate

from amberwatch.detect.decision import DecisionRule
from amberwatch.detect.registry import ModelInfo
from amberwatch.errors import AmberWatchError, InputError, NotFoundError
from amberwatch.jobs.queue import QUEUE, RUN_TASK, defer
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import ModelVersion, Run, Scene
from amberwatch.store.queries import detections as detection_queries
from amberwatch.store.queries import models as model_queries
from amberwatch.store.queries import runs as run_queries
from amberwatch.store.queries.detections import NewDetection
from amberwatch.types import DetectionResult, IngestedScene, Progress, noop_progress
from amberwatch.usecases.scenes import as_multipolygon, get_scene, scene_from_row

log = logging.getLogger(__name__)


# -- models --------------------------------------------------------------------------------------
def register_model(store: Store, info: ModelInfo) -> ModelVersion:
    """Make sure a registry model version has its row (runs refer to it)."""
    with store.session() as session:
        row = model_queries.get_or_add(session, info.name, info.version, info.family, info.sha256, info.card,
                                       info.metrics)
        if row.sha256 != info.sha256:
            raise InputError(
                f"model {info.name}@{info.version} changed on disk (sha256 {info.sha256[:12]} != registered "
                f"{row.sha256[:12]}): give the new model a new version"
            )
        return row


# -- detect + publish ----------------------------------------------------------------------------
def create_run(store: Store, settings: Settings, scene: Scene, model_name: str | None = None,
               parameters: dict | None = None, reference: Scene | None = None,
               change_model: str | None = None, pixel_threshold: float | None = None,
               min_confidence: float | None = None, created_by: str | None = None) -> Run:
    """Resolve the model(s) and create a pending run for ``scene`` (with the change model when ``reference``).

    ``pixel_threshold`` / ``min_confidence`` override the model's decision rule for this run (segmentation models).
    """
    from amberwatch.detect.registry import get_model

    info = get_model(settings.models_dir, model_name, scene.family, settings.default_models)
    parameters = dict(parameters or {})
    if parameters.get("executor") == "dask" and info.family == "vhr_rgb":
        raise InputError(f"{info.ref} is a superpixel classifier: --dask/--workers apply to the segmentation "
                         "models (sentinel2, landsat) only")
    if pixel_threshold is not None or min_confidence is not None:
        if info.family == "vhr_rgb":
            raise InputError(f"{info.ref} is a superpixel classifier: --pixel-threshold / --min-confidence apply "
                             "to the segmentation models (sentinel2, landsat) only")
        default = info.decision
        rule = DecisionRule(default.pixel_threshold if pixel_threshold is None else pixel_threshold,
                            default.min_object_confidence if min_confidence is None else min_confidence)
        parameters["decision_rule"] = rule.as_dict()
    if reference is not None:
        from amberwatch.detect.change import load_change_model

        if reference.id == scene.id:
            raise InputError("the reference scene must differ from the scene")
        if reference.acquired >= scene.acquired:
            raise InputError(
                f"the reference scene ({reference.scene_key}, {reference.acquired:%Y-%m-%d}) must be older than "
                f"the scene ({scene.scene_key}, {scene.acquired:%Y-%m-%d})"
            )
        change = load_change_model(settings.models_dir, change_model)
        parameters.update(reference_scene_id=reference.id, reference_scene_key=reference.scene_key,
                          change_model=f"{change.name}@{change.version}")
    mv = register_model(store, info)
    with store.session() as session:
        return run_queries.create(session, mv.id, scene.id, parameters, created_by)


ENSEMBLE_KEY = "amberwatch:ensemble_model"  # card key: the registered U-Net + pixel RF ensemble of a model


def ensemble_model(settings: Settings, scene: Scene, model_name: str | None) -> str:
    """The U-Net + RF ensemble registered for ``model_name`` (default: the scene family's default model), named by
    its card's ``amberwatch:ensemble_model``; InputError when it has none (docs/models.md)."""
    from amberwatch.detect.registry import get_model

    base = get_model(settings.models_dir, model_name, scene.family, settings.default_models)
    name = base.properties.get(ENSEMBLE_KEY)
    if not name:
        raise InputError(f"Model {base.ref} has no U-Net + RF ensemble (no {ENSEMBLE_KEY} in its card)")
    return str(name)


def public_error(err: BaseException) -> str:
    """What a run or job shows of an error: our own messages as they are, nothing of an internal one."""
    if isinstance(err, AmberWatchError):
        return str(err)
    return f"internal error ({type(err).__name__}); the server log has the details"


def execute_run(store: Store, settings: Settings, run_id: int, progress: Progress = noop_progress) -> Run:
    """Detect, store the polygons, update the sites and publish the run: all or nothing.

    Idempotent: a run that is already published or failed is returned as it is; each start counts as an attempt
    and a run started more than ``settings.job_max_attempts`` times (its worker died each time) is failed.
    """
    from amberwatch.detect import confusers_rule, detect_scene
    from amberwatch.detect.registry import get_model
    from amberwatch.vhr import detect_vhr

    with store.session() as session:
        outcome, run = run_queries.start_attempt(session, run_id, settings.job_max_attempts)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        if outcome != "start":
            log.info("run %d is %s: nothing to do", run_id, run.state)
            return run
        scene_row = run.scenes[0]
        mv = run.model_version
        if mv is None:
            raise InputError(f"run {run_id} has no model")
        params = dict(run.parameters or {})
    scene = scene_from_row(scene_row)
    info = get_model(settings.models_dir, f"{mv.name}@{mv.version}", scene.family, settings.default_models)

    stored_step = -1

    def report(fraction: float, message: str) -> None:
        """Show every update; store one per 5 % in the run row (job status)."""
        nonlocal stored_step
        progress(fraction * 0.9, message)
        if int(fraction * 20) != stored_step:
            stored_step = int(fraction * 20)
            with store.session() as session:
                run_queries.set_progress(session, run_id, fraction * 0.9, message)

    try:
        work = settings.path("runs", str(run_id))
        work.mkdir(parents=True, exist_ok=True)
        override = params.get("decision_rule")
        rule = DecisionRule(**override) if override else None
        if info.family == "vhr_rgb":  # superpixel classifier; segmentation models go through detect_scene
            result = detect_vhr(scene, info.path, settings, work_dir=work, progress=report)
        elif params.get("executor") == "dask":
            result = detect_on_dask(scene, info, settings, params.get("dask_workers"), report, rule)
        else:
            result = detect_scene(scene, info, work, settings, progress=report, rule=rule)
        if info.family != "vhr_rgb":  # the card's natural-sand rule (river sandbars), if it has one
            if confusers_rule.ContextRule.from_card(info.properties) is not None:
                progress(0.9, "natural-sand context rule")  # its own stage in the progress (and in bench_detect)
            result = confusers_rule.apply_to_result(result, scene, info)
        if params.get("reference_scene_id"):
            progress(0.9, "change model against the reference scene")
            apply_change_model(store, settings, scene, int(params["reference_scene_id"]), params["change_model"],
                               result, work)
        progress(0.92, "storing and publishing")
        publish_result(store, settings, run_id, scene_row.id, result)
    except Exception as err:
        log.exception("run %d failed", run_id)
        with store.session() as session:
            run_queries.mark_failed(session, run_id, public_error(err))
        raise
    progress(1.0, "published")
    with store.session() as session:
        done = run_queries.get(session, run_id)
        assert done is not None
        return done


def detect_on_dask(scene: IngestedScene, info: ModelInfo, settings: Settings, workers: int | None,
                   progress: Progress, rule: DecisionRule | None) -> DetectionResult:
    """Detect on Dask: the cluster at ``settings.dask_scheduler``, else a local one of ``workers`` processes
    (default ``settings.dask_workers``) for the time of this run."""
    from amberwatch.detect.scaleout import dask_cluster, detect_scene_dask

    with dask_cluster(settings.dask_scheduler, int(workers or settings.dask_workers)) as cluster:
        return detect_scene_dask(scene, info, settings, cluster.client, progress=progress, rule=rule,
                                 threads=cluster.threads)


async def queue_run(queue: procrastinate.App, store: Store, run_id: int, queue_name: str = QUEUE) -> None:
    """Put a pending run on the job queue (``queue_name``: the main one, or a CLI command's own); a worker executes
    it (``execute_run``)."""
    job_id = await defer(queue, RUN_TASK, lock=f"run-{run_id}", queue_name=queue_name, run_id=run_id)
    await asyncio.to_thread(mark_queued, store, run_id, job_id)


async def queue_orphans(queue: procrastinate.App, store: Store, older_than_s: float) -> int:
    """Queue the runs that were created but never queued (a crash between the two steps) or whose queue job was
    lost; fail the runs whose queue job ended without running them (never left ``queued`` for ever)."""
    with store.session() as session:
        for run_id in run_queries.waiting_on_dead_jobs(session):
            log.warning("run %d: its queue job ended without running it: failed", run_id)
            run_queries.mark_failed(session, run_id, "its job ended before the run started (see the worker log)")
        for run_id in run_queries.waiting_on_lost_jobs(session):
            run_queries.back_to_pending(session, run_id)
        orphans = run_queries.orphaned_pending(session, older_than_s)
    for run_id in orphans:
        log.warning("run %d was never queued: queuing it now", run_id)
        await queue_run(queue, store, run_id)
    return len(orphans)


def mark_queued(store: Store, run_id: int, queue_job_id: int) -> None:
    with store.session() as session:
        run_queries.mark_queued(session, run_id, queue_job_id)


def finished(store: Store, run_id: int) -> bool:
    """The run is published or failed and its job has ended: layers refreshed, nothing left to do."""
    with store.session() as session:
        run = run_queries.get(session, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run.state in run_queries.TERMINAL and run_queries.queue_job_done(session, run.queue_job_id)


def get_run(store: Store, run_id: int) -> Run:
    with store.session() as session:
        run = run_queries.get(session, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        _ = run.model_version, run.scenes  # loaded for the caller
        return run


def list_runs(store: Store, state: str | None, limit: int, offset: int) -> list[Run]:
    with store.session() as session:
        rows = run_queries.page(session, state, limit, offset)
        for run in rows:
            _ = run.model_version, run.scenes
        return rows


# A pit should come with vegetation -> bare change since the reference, a pond with vegetation -> water.
EXPECTED_CHANGE = {"pit": "vegetation_to_bare", "pond": "vegetation_to_water"}


def apply_change_model(store: Store, settings: Settings, scene: IngestedScene, reference_id: int, change_ref: str,
                       result: DetectionResult, work: Path) -> None:
    """Run the change model (reference -> scene) and combine it with the segmentation polygons in ``result``.

    Rule: ``change_fraction`` = share of the polygon's valid pixels in the change class expected for its class;
    ``confidence`` = segmentation confidence x (0.5 + 0.5 x change_fraction). A polygon that was already bare or
    water in the reference (a quarry, an old field) keeps half its confidence; polygons fully clouded in either
    scene keep the segmentation confidence and no change attributes.
    """
    from amberwatch.detect.change import change_summary, detect_change, load_change_model

    reference = scene_from_row(get_scene(store, reference_id))
    model = load_change_model(settings.models_dir, change_ref)
    change_path = detect_change(scene, reference, model, work / "change.tif", settings)
    for poly, summary in zip(result.polygons, change_summary(change_path, result.polygons), strict=True):
        if not summary.get("valid_pixels"):
            continue
        fraction = float(summary["fractions"].get(EXPECTED_CHANGE[poly.cls], 0.0))
        poly.change_class = summary.get("change_class")
        poly.change_fraction = fraction
        poly.confidence = float(poly.confidence) * (0.5 + 0.5 * fraction)
    result.parameters.update(change_path=str(change_path), change_rule="confidence x (0.5 + 0.5 x change_fraction)")


def publish_result(store: Store, settings: Settings, run_id: int, scene_id: int, result: DetectionResult) -> None:
    """One transaction: insert detections (COPY), update sites, flip the run to ``published``; then refresh the
    layers, GeoServer (when configured) and the run's items in the STAC API at /stac."""
    from amberwatch.track import update_sites

    with store.session() as session:
        run = run_queries.get_one(session, run_id)
        detection_queries.bulk_insert_detections(session.connection(), run_id, scene_id, result.observed_at, (
            NewDetection(poly.cls, float(poly.confidence), float(poly.area_ha), poly.change_class,
                         poly.change_fraction, as_multipolygon(poly.geometry))
            for poly in result.polygons))
        update_sites(session, run_id, result.clear_sky)
        run.n_detections = len(result.polygons)
        run.provider = result.provider
        run.probability_path = str(result.probability_path) if result.probability_path else None
        run.parameters = {**(run.parameters or {}), **result.parameters}
        run.state, run.progress, run.message = "published", 1.0, "published"
        now = datetime.now(UTC)
        run.finished_at = run.published_at = now
    refresh_layers(store, settings)
    from amberwatch.usecases.geoserver import publish_after_run

    publish_after_run(store, settings)  # when AMBERWATCH_GEOSERVER_URL is set; a failure is logged, not raised
    from amberwatch.usecases.stac_catalog import publish_run

    publish_run(store, settings, run_id)  # its items in /stac when served; a failure is logged, not raised


def refresh_layers(store: Store, settings: Settings) -> None:
    """Regenerate the OGC configs so per-run layers appear (atomic file swaps)."""
    from amberwatch import publish

    publish.refresh(store, settings)


def detect(store: Store, settings: Settings, scene: Scene, model_name: str | None = None,
           parameters: dict | None = None, progress: Progress = noop_progress, reference: Scene | None = None,
           pixel_threshold: float | None = None, min_confidence: float | None = None) -> Run:
    """Create and execute a run for ``scene`` (synchronously); with ``reference``, also the change model."""
    run = create_run(store, settings, scene, model_name, parameters, reference=reference,
                     pixel_threshold=pixel_threshold, min_confidence=min_confidence)
    return execute_run(store, settings, run.id, progress)
