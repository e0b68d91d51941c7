"""Volunteer validation (docs/validation.md): fill the queue, serve the next task, record votes, the expert's
decision and field checks, score volunteers on gold items, and export the settled polygons as training labels.

An item's status is recomputed from everything known about it after each change (:func:`amberwatch.validation.
rules.settle`): a field check of its site beats an analyst's decision, which beats a gold answer, which beats the
votes. The layers read the stored status (``validation_status`` of ``mining_sites`` and ``detections``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from amberwatch.accounts import Principal
from amberwatch.errors import AmberWatchError, InputError, NotFoundError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import ValidationItem
from amberwatch.store.queries import validation as vq
from amberwatch.validation import rules
from amberwatch.validation.items import NewItem

MAX_COMMENT = 2000


class ConflictError(AmberWatchError):
    """The request is valid but the item's state does not allow it (409)."""

    status_code = 409


# -- the queue ----------------------------------------------------------------------------------------------------
def enqueue(store: Store, settings: Settings, *, threshold: float | None = None, margin: float | None = None,
            limit: int = 1000) -> dict[str, int]:
    """Add the new sites and the detections whose confidence is within ``margin`` of the threshold (``threshold``,
    or each run's own decision rule when None) that have no item yet; returns how many of each were added."""
    margin = settings.validation_uncertain_margin if margin is None else margin
    with store.session() as session:
        sites = vq.new_sites_without_item(session, limit)
        uncertain = vq.uncertain_detections(session, threshold, margin, limit)
        vq.add_items(session, [NewItem("site", "new_site", site_id=s) for s in sites]
                     + [NewItem("detection", "uncertain", detection_id=d, rank=dist) for d, dist in uncertain],
                     settings.validation_votes)
    return {"new_site": len(sites), "uncertain": len(uncertain)}


def add_items(store: Store, settings: Settings, items: list[NewItem]) -> list[int]:
    """Add items (e.g. gold items or an accuracy sample) with the configured number of votes; ids in order."""
    with store.session() as session:
        try:
            return vq.add_items(session, items, settings.validation_votes)
        except LookupError as err:
            raise NotFoundError(str(err)) from None


def item_view(session: Session, item: ValidationItem, *, for_voter: bool = True) -> dict[str, Any]:
    """An item as the API shows it: the polygon (GeoJSON), the before/after chips of its site, and (for analysts)
    its votes and state. A volunteer is not told the source (gold items look like any other)."""
    geometry = vq.item_geojson(session, item.id)
    chips = {w: f"/api/validation/items/{item.id}/chips/{w}.png" for w in ("before", "after")}
    out: dict[str, Any] = {"id": item.id, "kind": item.kind, "detection_id": item.detection_id,
                           "site_id": item.site_id, "geometry": json.loads(geometry) if geometry else None,
                           "chips": chips, "site_page": f"/sites/{item.site_id}" if item.site_id else None,
                           "answers": list(rules.VOTE_ANSWERS),
                           "reasons": [{"code": c, "en": en, "uk": uk} for c, (en, uk) in rules.REASONS.items()]}
    if not for_voter:
        votes = vq.votes_of(session, item.id)
        out |= {"source": item.source, "status": item.status, "final_answer": item.final_answer,
                "final_reason": item.final_reason, "decided_via": item.decided_via,
                "votes_needed": item.votes_needed, "sample": item.sample,
                "votes": [{"voter": v.voter, "answer": v.answer, "reason": v.reason, "comment": v.comment,
                           "at": v.created_at.isoformat()} for v in votes]}
    return out


def item_chip_png(store: Store, item_id: int, which: str) -> bytes:
    """The item in true colour in the earliest (``before``) or latest (``after``) stored scene covering it, its
    polygon (or point) outlined; the portal's site chips drawn the same way (usecases.portal.render_chip)."""
    from amberwatch.usecases import portal as portal_uc

    portal_uc.check_chip(which)
    with store.session() as session:
        _item(session, item_id)
        geometry = vq.item_geojson(session, item_id)
        scene = portal_uc.pick_chip_scene(vq.scenes_covering_item(session, item_id), which)
    if scene is None or geometry is None:
        raise NotFoundError(f"item {item_id}: no stored scene with red, green and blue bands covers it")
    if not Path(scene["reflectance_path"]).exists():
        raise NotFoundError(f"item {item_id}: the reflectance of scene {scene['scene_key']} is no longer stored")
    shape_ = json.loads(geometry)
    return portal_uc.render_chip(scene, shape_, shape_)


def next_task(store: Store, principal: Principal) -> dict[str, Any] | None:
    """The next task for this volunteer (never one they voted on), or None when the queue is empty for them."""
    with store.session() as session:
        item = vq.next_item(session, principal.name)
        return None if item is None else item_view(session, item)


def get_item(store: Store, item_id: int) -> dict[str, Any]:
    with store.session() as session:
        return item_view(session, _item(session, item_id), for_voter=False)


def expert_queue(store: Store, limit: int, offset: int) -> list[dict[str, Any]]:
    """Disputed items waiting for an analyst, with their votes."""
    with store.session() as session:
        return [item_view(session, i, for_voter=False) for i in vq.disputed(session, limit, offset)]


# -- votes, decisions ---------------------------------------------------------------------------------------------
def vote(store: Store, principal: Principal, item_id: int, answer: str, reason: str | None,
         comment: str | None = None) -> dict[str, Any]:
    """Record one volunteer's vote and recompute the item's status. 409 when they voted on it already or when it
    needs no more votes (it has its N votes or is decided)."""
    answer, reason = rules.check_answer(answer, reason, allow_unsure=True)
    comment = _text(comment, "comment")
    with store.session() as session:
        item = _item(session, item_id, lock=True)
        votes = vq.votes_of(session, item_id)
        if any(v.voter == principal.name for v in votes):
            raise ConflictError(f"{principal.name} has already voted on item {item_id}")
        if item.source != "gold" and (item.decided_via in ("expert", "field_check") or item.status == "disputed"
                                      or len(votes) >= item.votes_needed):
            raise ConflictError(f"item {item_id} needs no more votes (it is {item.status})")
        if vq.add_vote(session, item_id, principal.name, answer, reason, comment) is None:
            raise ConflictError(f"{principal.name} has already voted on item {item_id}")
        _resettle(session, item)
        return _state(item)


def decide(store: Store, principal: Principal, item_id: int, answer: str, reason: str | None,
           note: str | None = None) -> dict[str, Any]:
    """An analyst's final answer on an item (usually a disputed one); a field check of its site still wins."""
    answer, reason = rules.check_answer(answer, reason, allow_unsure=False)
    note = _text(note, "note")
    with store.session() as session:
        item = _item(session, item_id, lock=True)
        vq.add_decision(session, item_id, principal.name, answer, reason, note)
        _resettle(session, item)
        return _state(item)


def resettle_site(session: Session, site_id: int) -> None:
    """Recompute every item of a site (after a field check)."""
    for item in vq.items_of_site(session, site_id):
        _resettle(session, item)


def _resettle(session: Session, item: ValidationItem) -> None:
    votes = [rules.Vote(v.answer, v.reason) for v in vq.votes_of(session, item.id)]
    decision = vq.latest_decision(session, item.id)
    field_state = vq.latest_field_state(session, item.site_id) if item.site_id is not None else None
    settled = rules.settle(votes, item.votes_needed, gold=item.expected_answer if item.source == "gold" else None,
                           expert=rules.Vote(decision.answer, decision.reason) if decision else None,
                           field_state=field_state)
    vq.set_settled(session, item, settled)
    session.flush()


def _state(item: ValidationItem) -> dict[str, Any]:
    return {"id": item.id, "status": item.status, "final_answer": item.final_answer,
            "final_reason": item.final_reason, "decided_via": item.decided_via}


def _item(session: Session, item_id: int, *, lock: bool = False) -> ValidationItem:
    item = vq.get_item(session, item_id, lock=lock)
    if item is None:
        raise NotFoundError(f"no validation item {item_id}")
    return item


def _text(value: str | None, what: str) -> str | None:
    if value is not None and len(value) > MAX_COMMENT:
        raise InputError(f"{what} is longer than {MAX_COMMENT} characters")
    return value or None


# -- volunteers ---------------------------------------------------------------------------------------------------
def volunteers(store: Store) -> list[dict[str, Any]]:
    """Each volunteer's votes and reliability: the share of their answers on gold items that matched the known
    answer (``unsure`` counts as wrong; None before their first gold item), and how often they agreed with the
    final answer of the other settled items."""
    with store.session() as session:
        rows = vq.volunteers(session)
    out = []
    for r in rows:
        out.append({"voter": r["voter"], "votes": r["votes"], "gold_votes": r["gold_votes"],
                    "gold_correct": r["gold_correct"],
                    "reliability": r["gold_correct"] / r["gold_votes"] if r["gold_votes"] else None,
                    "agreement_with_final": r["agreed_with_final"] / r["on_settled"] if r["on_settled"] else None,
                    "last_vote": r["last_vote"].isoformat() if r["last_vote"] else None})
    return out


# -- site pages ---------------------------------------------------------------------------------------------------
def site_validation(store: Store, site_id: int) -> dict[str, Any]:
    """What a site page shows: the validation status of the site, its items and its field checks."""
    with store.session() as session:
        if not vq.site_exists(session, site_id):
            raise NotFoundError(f"no site {site_id}")
        items = vq.items_of_site(session, site_id)
        checks = vq.field_checks_of_site(session, site_id)
        status = _best_status([i.status for i in items])  # as the layers: decided, disputed, pending
        return {"status": status, "field_checked": bool(checks),
                # public: no sources, and no gold items (volunteers must not tell them from the others)
                "items": [_state(i) | {"kind": i.kind} for i in items if i.source != "gold"],
                "field_checks": [{**c, "id": str(c["id"]), "checked_on": c["checked_on"].isoformat(),
                                  "photos": [f"/api/field-checks/{c['id']}/photos/{n}.jpg"
                                             for n in range(len(c["photos"]))]} for c in checks]}


def _best_status(statuses: list[str]) -> str:
    order = {"confirmed": 0, "rejected": 0, "disputed": 1, "pending": 2, "unvalidated": 3}
    return min(statuses, key=lambda s: order[s]) if statuses else "unvalidated"


# -- training labels ----------------------------------------------------------------------------------------------
POSITIVES_LAYER = "labels"
NEGATIVES_LAYER = "rejected"


def export_labels(store: Store, out: Path) -> dict[str, int]:
    """Write the settled polygons to a GeoPackage in EPSG:4326 (docs/validation.md#training-labels).

    Layer ``labels`` (the first, which ``chips_from_polygons`` reads): confirmed mining, ``class`` pit or pond
    (the detection's class; sites are pits). Layer ``rejected``: what was settled as not mining, with the
    ``reason``. Both carry the item id, detection / site id, how it was decided, and the scene and date of the
    detection."""
    import numpy as np
    import pyogrio.raw

    from amberwatch.vector_out import write_vector

    if out.suffix.lower() != ".gpkg":
        raise InputError(f"{out.name}: labels are written as a GeoPackage (.gpkg)")
    with store.session() as session:
        rows = vq.settled_polygons(session)
    counts = {}
    for layer, answer in ((POSITIVES_LAYER, "mining"), (NEGATIVES_LAYER, "not_mining")):
        part = [r for r in rows if r["answer"] == answer]
        columns = {
            "class": np.array([(r["cls"] or "pit") if answer == "mining" else "background" for r in part],
                              dtype=object),
            "reason": np.array([r["reason"] for r in part], dtype=object),
            "item_id": np.array([r["item_id"] for r in part], dtype=np.int64),
            "kind": np.array([r["kind"] for r in part], dtype=object),
            "detection_id": np.array([r["detection_id"] or 0 for r in part], dtype=np.int64),
            "site_id": np.array([r["site_id"] or 0 for r in part], dtype=np.int64),
            "decided_via": np.array([r["via"] for r in part], dtype=object),
            "scene_key": np.array([r["scene_key"] for r in part], dtype=object),
            "observed_at": np.array([r["observed_at"].isoformat() if r["observed_at"] else None for r in part],
                                    dtype=object),
        }
        wkb = np.array([bytes(r["wkb"]) for r in part], dtype=object)
        if layer == POSITIVES_LAYER:
            counts["positives"] = write_vector(out, layer, columns, wkb)
        else:
            pyogrio.raw.write(str(out), geometry=wkb, field_data=list(columns.values()), fields=list(columns),
                              crs="EPSG:4326", geometry_type="MultiPolygon", driver="GPKG", layer=layer,
                              append=True)
            counts["negatives"] = len(wkb)
    return counts
