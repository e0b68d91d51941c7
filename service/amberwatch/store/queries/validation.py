"""Validation items, votes, expert decisions, field checks and assignments (migration 0009).

For the accuracy assessment: :func:`add_items` puts sampled items in the queue (source ``accuracy_sample``) and
:func:`reference_answers` reads their final answers back (field check > expert decision > gold > agreed votes;
items not yet settled are absent).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from amberwatch.store.models import (
    Detection,
    FieldAssignment,
    FieldCheck,
    Run,
    Site,
    ValidationDecision,
    ValidationItem,
    ValidationVote,
)
from amberwatch.validation.items import NewItem, Reference
from amberwatch.validation.rules import Settled

DEFAULT_VOTES = 3


# -- items --------------------------------------------------------------------------------------------------------
def add_items(session: Session, items: list[NewItem], votes_needed: int = DEFAULT_VOTES) -> list[int]:
    """Add items to the validation queue; returns their ids in the order given.

    An item that already exists (same detection or site with the same source) is not added again: its existing id
    is returned (its ``sample`` is set when it had none). A detection or site that does not exist raises
    ``LookupError``. Gold items start settled (their expected answer). The caller commits.
    """
    ids: list[int] = []
    for item in items:
        geom: Any
        site_id = item.site_id
        if item.kind == "detection":
            row = session.execute(select(Detection.geom, Detection.site_id)
                                  .where(Detection.id == item.detection_id)).first()
            if row is None:
                raise LookupError(f"no detection {item.detection_id}")
            geom, site_id = row[0], site_id or row[1]
        elif item.kind == "site":
            geom = session.scalar(select(func.coalesce(Site.geom, Site.max_geom)).where(Site.id == item.site_id))
            if geom is None:
                raise LookupError(f"no site {item.site_id}")
        else:
            geom = func.ST_GeomFromText(item.geom_wkt, 4326)
        values: dict[str, Any] = dict(
            kind=item.kind, detection_id=item.detection_id, site_id=site_id, geom=geom, source=item.source,
            priority=item.priority, rank=item.rank, expected_answer=item.expected_answer, votes_needed=votes_needed,
            sample=item.sample, details=item.details)
        if item.source == "gold":
            assert item.expected_answer is not None
            values.update(status="confirmed" if item.expected_answer == "mining" else "rejected",
                          final_answer=item.expected_answer, decided_via="gold", decided_at=datetime.now(UTC))
        stmt = insert(ValidationItem).values(**values).on_conflict_do_nothing().returning(ValidationItem.id)
        new_id = session.scalar(stmt)
        if new_id is None:  # already there
            target = (ValidationItem.detection_id == item.detection_id if item.kind == "detection"
                      else ValidationItem.site_id == item.site_id)
            existing = session.scalars(select(ValidationItem).where(
                ValidationItem.kind == item.kind, target, ValidationItem.source == item.source)).one()
            if existing.sample is None and item.sample is not None:
                existing.sample = item.sample
            new_id = existing.id
        ids.append(int(new_id))
    session.flush()
    return ids


def reference_answers(session: Session, item_ids: list[int] | None = None, *,
                      sample: str | None = None) -> dict[int, Reference]:
    """Item id -> its final answer (:class:`Reference`) for the settled items among ``item_ids`` (or those
    tagged ``sample``; all settled items when both are None). Pending, unvalidated and disputed items are absent."""
    q = select(ValidationItem.id, ValidationItem.final_answer, ValidationItem.final_reason,
               ValidationItem.decided_via).where(ValidationItem.final_answer.is_not(None))
    if item_ids is not None:
        q = q.where(ValidationItem.id.in_(item_ids))
    if sample is not None:
        q = q.where(ValidationItem.sample == sample)
    return {int(i): Reference(int(i), str(a), r, str(v)) for i, a, r, v in session.execute(q)}


def get_item(session: Session, item_id: int, *, lock: bool = False) -> ValidationItem | None:
    q = select(ValidationItem).where(ValidationItem.id == item_id)
    return session.scalars(q.with_for_update() if lock else q).first()


def item_geojson(session: Session, item_id: int) -> str | None:
    return session.scalar(select(func.ST_AsGeoJSON(ValidationItem.geom, 6)).where(ValidationItem.id == item_id))


def next_item(session: Session, voter: str) -> ValidationItem | None:
    """The next item for ``voter``: one they have not voted on, still open (gold items always are; others until
    they have their votes or are decided), by priority (new sites, uncertain and gold, accuracy sample), rank, id."""
    voted = exists().where(ValidationVote.item_id == ValidationItem.id, ValidationVote.voter == voter)
    n_votes = (select(func.count()).where(ValidationVote.item_id == ValidationItem.id)
               .correlate(ValidationItem).scalar_subquery())
    open_ = or_(ValidationItem.source == "gold",
                and_(ValidationItem.final_answer.is_(None), ValidationItem.status != "disputed",
                     n_votes < ValidationItem.votes_needed))
    q = (select(ValidationItem).where(~voted, open_)
         .order_by(ValidationItem.priority, ValidationItem.rank, ValidationItem.id).limit(1))
    return session.scalars(q).first()


def scenes_covering_item(session: Session, item_id: int) -> list[dict[str, Any]]:
    """Every stored scene whose footprint touches the item's geometry, oldest first (for its chips)."""
    rows = session.execute(text(
        "select sc.id as scene_id, sc.scene_key, sc.acquired, sc.reflectance_path, sc.bands from scenes sc"
        " join validation_items i on i.id = :id and ST_Intersects(sc.footprint, i.geom)"
        " order by sc.acquired, sc.id"), {"id": item_id}).mappings().all()
    return [dict(r) for r in rows]


def items_of_site(session: Session, site_id: int) -> list[ValidationItem]:
    """Every item about a site: the site's own and its detections'."""
    return list(session.scalars(select(ValidationItem).where(ValidationItem.site_id == site_id)
                                .order_by(ValidationItem.id)))


def set_settled(session: Session, item: ValidationItem, settled: Settled) -> None:
    changed = (item.final_answer, item.decided_via) != (settled.answer, settled.via)
    item.status, item.final_answer, item.final_reason, item.decided_via = (
        settled.status, settled.answer, settled.reason, settled.via)
    if changed:
        item.decided_at = datetime.now(UTC) if settled.answer else None


def disputed(session: Session, limit: int, offset: int) -> list[ValidationItem]:
    """The expert queue: disputed items, oldest first."""
    return list(session.scalars(select(ValidationItem).where(ValidationItem.status == "disputed")
                                .order_by(ValidationItem.id).limit(limit).offset(offset)))


# -- votes and decisions ----------------------------------------------------------------------------------------
def votes_of(session: Session, item_id: int) -> list[ValidationVote]:
    return list(session.scalars(select(ValidationVote).where(ValidationVote.item_id == item_id)
                                .order_by(ValidationVote.id)))


def add_vote(session: Session, item_id: int, voter: str, answer: str, reason: str | None,
             comment: str | None) -> ValidationVote | None:
    """Store a vote; None when this voter already voted on this item."""
    new_id = session.scalar(insert(ValidationVote).values(
        item_id=item_id, voter=voter, answer=answer, reason=reason, comment=comment)
        .on_conflict_do_nothing().returning(ValidationVote.id))
    return None if new_id is None else session.get(ValidationVote, new_id)


def add_decision(session: Session, item_id: int, analyst: str, answer: str, reason: str | None,
                 note: str | None) -> ValidationDecision:
    row = ValidationDecision(item_id=item_id, analyst=analyst, answer=answer, reason=reason, note=note)
    session.add(row)
    session.flush()
    return row


def latest_decision(session: Session, item_id: int) -> ValidationDecision | None:
    return session.scalars(select(ValidationDecision).where(ValidationDecision.item_id == item_id)
                           .order_by(ValidationDecision.id.desc()).limit(1)).first()


def volunteers(session: Session) -> list[dict[str, Any]]:
    """Per voter: votes, gold votes and how many of those matched the known answer, and the gold (answer,
    expected) pairs for the reliability score."""
    rows = session.execute(text(
        """
        select v.voter, count(*) as votes,
               count(*) filter (where i.source = 'gold') as gold_votes,
               count(*) filter (where i.source = 'gold' and v.answer = i.expected_answer) as gold_correct,
               count(*) filter (where i.source <> 'gold' and i.decided_via in ('votes','expert','field_check')
                                and v.answer = i.final_answer) as agreed_with_final,
               count(*) filter (where i.source <> 'gold' and i.decided_via in ('votes','expert','field_check'))
                   as on_settled,
               max(v.created_at) as last_vote
        from validation_votes v join validation_items i on i.id = v.item_id
        group by v.voter order by v.voter
        """))
    return [dict(r._mapping) for r in rows]


# -- field checks -----------------------------------------------------------------------------------------------
def field_check(session: Session, check_id: uuid.UUID) -> FieldCheck | None:
    return session.get(FieldCheck, check_id)


def add_field_check(session: Session, *, check_id: uuid.UUID, site_id: int, checked_on: date, observer: str,
                    state: str, disturbance: int, lon: float | None, lat: float | None,
                    accuracy_m: float | None, notes: str | None, photos: list[dict[str, Any]],
                    submitted_by: str) -> bool:
    """Store a field check under the client's UUID; False (nothing stored) when that UUID is already there."""
    position = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326) if lon is not None and lat is not None else None
    new_id = session.scalar(insert(FieldCheck).values(
        id=check_id, site_id=site_id, checked_on=checked_on, observer=observer, state=state,
        disturbance=disturbance, position=position, position_accuracy_m=accuracy_m, notes=notes, photos=photos,
        submitted_by=submitted_by).on_conflict_do_nothing().returning(FieldCheck.id))
    return new_id is not None


def latest_field_state(session: Session, site_id: int) -> str | None:
    """The observed state of the site's most recent field check (by visit date, then upload)."""
    return session.scalar(select(FieldCheck.state).where(FieldCheck.site_id == site_id)
                          .order_by(FieldCheck.checked_on.desc(), FieldCheck.created_at.desc()).limit(1))


def field_checks_of_site(session: Session, site_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(FieldCheck.id, FieldCheck.checked_on, FieldCheck.observer, FieldCheck.state, FieldCheck.disturbance,
               FieldCheck.notes, FieldCheck.photos, func.ST_X(FieldCheck.position).label("lon"),
               func.ST_Y(FieldCheck.position).label("lat"))
        .where(FieldCheck.site_id == site_id).order_by(FieldCheck.checked_on.desc(), FieldCheck.created_at.desc()))
    return [dict(r._mapping) for r in rows]


def site_exists(session: Session, site_id: int) -> bool:
    return session.get(Site, site_id) is not None


def assign(session: Session, site_id: int, assignee: str | None, created_by: str) -> None:
    session.execute(insert(FieldAssignment).values(site_id=site_id, assignee=assignee, created_by=created_by)
                    .on_conflict_do_nothing())


def assigned_sites(session: Session, assignee: str) -> list[dict[str, Any]]:
    """The sites assigned to ``assignee`` or to every field team, with their outline and centroid."""
    rows = session.execute(text(
        """
        select distinct on (s.id) s.id as site_id, s.status, s.area_ha, s.oblast, s.raion, s.hromada,
               st_x(st_centroid(coalesce(s.geom, s.max_geom))) as lon,
               st_y(st_centroid(coalesce(s.geom, s.max_geom))) as lat,
               st_asgeojson(coalesce(s.geom, s.max_geom), 6) as geometry
        from field_assignments a join sites s on s.id = a.site_id
        where a.assignee is null or a.assignee = :who
        order by s.id
        """), {"who": assignee})
    return [dict(r._mapping) for r in rows]


# -- training labels --------------------------------------------------------------------------------------------
def settled_polygons(session: Session) -> list[dict[str, Any]]:
    """Settled items with a polygon: item id, kind, detection/site id, answer, reason, via, the detection's
    class, observed date and scene key (detections), WKB multipolygon."""
    rows = session.execute(text(
        """
        select i.id as item_id, i.kind, i.detection_id, i.site_id, i.final_answer as answer,
               i.final_reason as reason, i.decided_via as via, d.class as cls, d.observed_at, sc.scene_key,
               st_asbinary(st_multi(st_collectionextract(i.geom, 3))) as wkb
        from validation_items i
        left join detections d on d.id = i.detection_id
        left join scenes sc on sc.id = d.scene_id
        where i.final_answer is not null and st_dimension(i.geom) = 2
        order by i.id
        """))
    return [dict(r._mapping) for r in rows]


# -- filling the queue ------------------------------------------------------------------------------------------
def new_sites_without_item(session: Session, limit: int) -> list[int]:
    has = exists().where(ValidationItem.site_id == Site.id, ValidationItem.kind == "site")
    return list(session.scalars(select(Site.id).where(Site.status == "new", Site.merged_into_id.is_(None), ~has)
                                .order_by(Site.id).limit(limit)))


def uncertain_detections(session: Session, threshold: float | None, margin: float,
                         limit: int) -> list[tuple[int, float]]:
    """Published detections whose confidence is within ``margin`` of the threshold and that have no item yet:
    (id, distance), closest first. The threshold is ``threshold`` or, when None, each run's own decision rule:
    the larger of its pixel threshold and its minimum object confidence (0.5 when the run has no rule)."""
    has = exists().where(ValidationItem.detection_id == Detection.id)
    rule = Run.parameters["decision_rule"]
    own = func.greatest(func.coalesce(rule["pixel_threshold"].as_float(), 0.5),
                        func.coalesce(rule["min_object_confidence"].as_float(), 0.0))
    distance = func.abs(Detection.confidence - (own if threshold is None else threshold))
    q = (select(Detection.id, distance).join(Run, Run.id == Detection.run_id)
         .where(Run.state == "published", distance <= margin, ~has)
         .order_by(distance, Detection.id).limit(limit))
    return [(int(i), float(d)) for i, d in session.execute(q)]
