"""The demo: ingest the bundled scene, detect, publish (idempotent: a second call reuses what is there)."""

from __future__ import annotations

import logging
from pathlib import Path

from amberwatch.errors import InputError
from amberwatch.settings import PROJECT_ROOT, Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import runs as run_queries
from amberwatch.types import Progress, noop_progress
from amberwatch.usecases import runs as pipeline
from amberwatch.usecases import scenes as scenes_uc
from amberwatch.usecases import validation as validation_uc

log = logging.getLogger(__name__)
DEMO_DIR = PROJECT_ROOT / "demo"


def demo_scene_path() -> Path:
    scenes = sorted(DEMO_DIR.glob("S2_*amber_demo*.tif"))
    if not scenes:
        raise InputError(f"no demo scene in {DEMO_DIR}: the repository checkout is incomplete")
    return scenes[0]


def prepare(settings: Settings, scene_path: Path | None = None, progress: Progress = noop_progress) -> int:
    """Make sure the demo scene is ingested and has a published run, its sites queued for validation; returns
    that run's id.

    ``progress(fraction, message)`` follows the detection (the CLI passes its progress bar).
    """
    store = Store(settings).start()
    scene = scenes_uc.ingest(store, settings, scene_path or demo_scene_path())
    with store.session() as session:
        run = run_queries.latest_published_for_scene(session, scene.id)
    if run is not None:
        log.info("demo: scene %s already has published run %d, reusing it", scene.scene_key, run.id)
        pipeline.refresh_layers(store, settings)
        return run.id
    run = pipeline.detect(store, settings, scene, progress=progress)
    log.info("demo: run %d published with %d detections", run.id, run.n_detections)
    # volunteers opening /validate/ find the demo's sites at once, not after the worker's hourly sweep
    added = validation_uc.enqueue(store, settings)
    log.info("demo: %d new sites and %d uncertain detections queued for validation", added["new_site"],
             added["uncertain"])
    return run.id
