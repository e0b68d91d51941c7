"""Volunteer validation (issue 10): the queue, votes and the agreement rule, the expert's decision, gold scoring,
the status on the published layers (OGC API Features and WFS through the real served app) and the training labels
read back by the training loader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from publish_helpers import publish_polygons
from shapely.geometry import box

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import validation as vq
from amberwatch.validation import rules
from amberwatch.validation.items import NewItem

ORIGIN = (26.3, 51.3)
FOOTPRINT = box(ORIGIN[0] - 0.3, ORIGIN[1] - 0.2, ORIGIN[0] + 0.3, ORIGIN[1] + 0.2)


def square(i: int, d: float = 0.0009) -> Any:
    cx, cy = ORIGIN[0] - 0.2 + 0.02 * i, ORIGIN[1]
    return box(cx - d, cy - d, cx + d, cy + d)


@pytest.fixture(scope="module")
def env(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("validation")
    settings = Settings(data_dir=tmp / "data", database_url=make_database("amberwatch_validation"))
    store = Store(settings).start()
    run_id = publish_polygons(store, settings, "VALIDATION_20250601", datetime(2025, 6, 1, tzinfo=UTC), FOOTPRINT,
                              [square(i) for i in range(8)])
    with store.session() as s:
        from sqlalchemy import select

        from amberwatch.store.models import Detection
        rows = s.execute(select(Detection.id, Detection.site_id).where(Detection.run_id == run_id)
                         .order_by(Detection.id)).all()
    yield {"store": store, "settings": settings, "tmp": tmp, "detections": [r[0] for r in rows],
           "sites": [r[1] for r in rows]}
    store.stop()


def test_agreement_rule() -> None:
    v = rules.Vote
    assert rules.votes_to_agree(3) == 2 and rules.votes_to_agree(5) == 4 and rules.votes_to_agree(1) == 1
    assert rules.from_votes([], 3).status == "unvalidated"
    assert rules.from_votes([v("mining"), v("mining")], 3).status == "pending"
    assert rules.from_votes([v("mining"), v("unsure"), v("mining")], 3) == rules.Settled(
        "confirmed", "mining", None, "votes")
    assert rules.from_votes([v("not_mining", "beach"), v("not_mining", "quarry"), v("not_mining", "quarry")],
                            3) == rules.Settled("rejected", "not_mining", "quarry", "votes")
    assert rules.from_votes([v("mining"), v("not_mining", "beach"), v("unsure")], 3).status == "disputed"
    assert rules.from_votes([v("unsure")] * 3, 3).status == "disputed"
    five = [v("mining")] * 3 + [v("not_mining", "cloud")] * 2
    assert rules.from_votes(five, 5).status == "disputed"  # 3 of 5 < ⌈10/3⌉ = 4
    assert rules.settle(five, 5, expert=v("mining")).via == "expert"
    assert rules.settle(five, 5, expert=v("mining"), field_state="not_mining").answer == "not_mining"
    assert rules.reliability([("mining", "mining"), ("unsure", "mining"), ("not_mining", "not_mining")]) == 2 / 3
    assert rules.reliability([]) is None


def test_add_items_and_reference_answers(env: dict[str, Any]) -> None:
    """The store functions the accuracy assessment builds on: items in, settled answers out."""
    store = env["store"]
    det = env["detections"][7]
    with store.session() as s:
        ids = vq.add_items(s, [
            NewItem("detection", "accuracy_sample", detection_id=det, sample="accuracy:test"),
            NewItem("location", "accuracy_sample", geom_wkt="POINT(26.5 51.4)", sample="accuracy:test"),
            NewItem("location", "gold", geom_wkt="POLYGON((26.5 51.4,26.51 51.4,26.51 51.41,26.5 51.4))",
                    expected_answer="not_mining", sample="accuracy:test"),
        ])
        again = vq.add_items(s, [NewItem("detection", "accuracy_sample", detection_id=det)])
    assert again == ids[:1] and len(set(ids)) == 3
    with store.session() as s:
        refs = vq.reference_answers(s, sample="accuracy:test")
        assert list(refs) == [ids[2]] and refs[ids[2]].answer == "not_mining" and refs[ids[2]].via == "gold"
        assert vq.reference_answers(s, ids[:2]) == {}
        with pytest.raises(LookupError):
            vq.add_items(s, [NewItem("detection", "uncertain", detection_id=10**12)])
