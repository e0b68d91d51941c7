"""The pgstac store behind /stac (schema ``pgstac``, migration 0011): collections and items through pgstac's own
SQL functions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from amberwatch.store.models import Run, Scene


def upsert_collection(session: Session, collection: dict[str, Any]) -> None:
    session.execute(text("select pgstac.upsert_collection(cast(:c as jsonb))"), {"c": json.dumps(collection)})


def upsert_items(session: Session, items: list[dict[str, Any]]) -> None:
    if items:
        session.execute(text("select pgstac.upsert_items(cast(:i as jsonb))"), {"i": json.dumps(items, default=str)})


def pgstac_present(session: Session) -> bool:
    """Whether the pgstac schema (its items table) is in this database."""
    return bool(session.scalar(text("select to_regclass('pgstac.items') is not null")))


def item_ids(session: Session, collection: str) -> set[str]:
    rows = session.execute(text("select id from pgstac.items where collection = :c"), {"c": collection})
    return {str(r[0]) for r in rows}


def scenes(session: Session) -> list[Scene]:
    return list(session.scalars(select(Scene).order_by(Scene.id)))


def published_runs(session: Session, run_id: int | None = None) -> list[Run]:
    """Published runs (or only ``run_id``, when it is published), with their scenes and model version loaded."""
    q = select(Run).where(Run.state == "published").order_by(Run.id)
    rows = list(session.scalars(q if run_id is None else q.where(Run.id == run_id)))
    for run in rows:
        _ = run.scenes, run.model_version
    return rows


def scenes_bbox(session: Session) -> list[float] | None:
    """[west, south, east, north] of every scene's footprint (EPSG:4326), or None without scenes."""
    box = func.ST_Extent(Scene.footprint)
    row = session.execute(select(func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box))).one()
    return None if row[0] is None else [float(v) for v in row]


def first_acquired(session: Session) -> datetime | None:
    """The acquisition time of the oldest scene (the start of the scenes' and runs' temporal extent)."""
    return session.scalar(select(func.min(Scene.acquired)))
