"""Registered model versions (rows that runs refer to)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from amberwatch.store.models import ModelVersion


def by_ref(session: Session, name: str, version: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))


def get_or_add(session: Session, name: str, version: str, family: str, sha256: str, card: dict, metrics: dict,
               ) -> ModelVersion:
    """The row of ``name@version``, inserted if missing; safe when several requests register it at once (the
    unique key decides, the loser reads the winner's row)."""
    session.execute(insert(ModelVersion).values(name=name, version=version, family=family, sha256=sha256,
                                                card=card, metrics=metrics)
                    .on_conflict_do_nothing(index_elements=["name", "version"]))
    row = by_ref(session, name, version)
    assert row is not None
    return row
