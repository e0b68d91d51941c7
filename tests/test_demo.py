"""`amberwatch demo`'s preparation on a fresh store: the bundled scene is ingested, detected and published once, and
its new sites wait in the volunteers' validation queue at once (a second call reuses the run and queues nothing
twice)."""

from __future__ import annotations

from pathlib import Path

from publish_helpers import app_settings
from sqlalchemy import func, select

from amberwatch import demo
from amberwatch.store.db import Store
from amberwatch.store.models import Run, Site, ValidationItem


def test_demo_publishes_once_and_queues_its_new_sites_for_validation(make_database, tmp_path: Path) -> None:
    settings = app_settings(make_database("amberwatch_demo"), tmp_path / "data")
    store = Store(settings).start()
    try:
        run_id = demo.prepare(settings)
        with store.session() as s:
            sites = s.scalars(select(Site.id)).all()
            queued = s.scalars(select(ValidationItem.site_id).where(ValidationItem.source == "new_site")).all()
            items = s.scalar(select(func.count()).select_from(ValidationItem))
        assert sites, "the demo scene gave no sites"
        assert sorted(queued) == sorted(sites)

        assert demo.prepare(settings) == run_id  # reused: no second run, nothing queued twice
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Run)) == 1
            assert s.scalar(select(func.count()).select_from(ValidationItem)) == items
    finally:
        store.stop()
