"""Registered model versions (rows that runs refer to)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from amberwatch.store.models import ModelVersion


def by_ref(session: Session, name: str, version: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))


def add(session: Session, name: str, version: str, family: str, sha256: str, card: dict, metrics: dict,
        ) -> ModelVersion:
    row = ModelVersion(name=name, version=version, family=family, sha256=sha256, card=card, metrics=metrics)
    session.add(row)
    session.flush()
    return row
