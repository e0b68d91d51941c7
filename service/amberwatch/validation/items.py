"""What the store takes and gives for validation items (plain data, shared with the accuracy assessment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amberwatch.errors import InputError
from amberwatch.validation.rules import ANSWERS, KINDS, SOURCE_PRIORITY


@dataclass(frozen=True)
class NewItem:
    """An item to add to the validation queue.

    ``kind`` ``detection`` needs ``detection_id``, ``site`` needs ``site_id`` (their geometry is copied from the
    detection / site), ``location`` needs ``geom_wkt`` (EPSG:4326 WKT: a sample pixel or plot the map calls not
    mining). ``source`` is one of new_site, uncertain, accuracy_sample, gold; a ``gold`` item needs
    ``expected_answer`` (mining / not_mining). ``rank`` orders items of the same source (lower first; for
    ``uncertain``: the distance of the confidence from the threshold). ``sample`` tags items of one accuracy design
    (e.g. ``"accuracy:7"``), ``details`` is kept as JSON (stratum, weight...).
    """

    kind: str
    source: str
    detection_id: int | None = None
    site_id: int | None = None
    geom_wkt: str | None = None
    expected_answer: str | None = None
    rank: float = 0.0
    sample: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.source not in SOURCE_PRIORITY:
            raise InputError(f"source {self.source!r} is not one of {', '.join(SOURCE_PRIORITY)}")
        need = {"detection": self.detection_id, "site": self.site_id, "location": self.geom_wkt}[self.kind]
        if need is None:
            field_name = "geom_wkt" if self.kind == "location" else self.kind + "_id"
            raise InputError(f"a {self.kind} item needs its {field_name}")
        if self.geom_wkt is not None:
            _check_wkt(self.geom_wkt)
        if self.expected_answer is not None and self.expected_answer not in ANSWERS:
            raise InputError(f"expected_answer {self.expected_answer!r} is not one of {', '.join(ANSWERS)}")
        if self.source == "gold" and self.expected_answer is None:
            raise InputError("a gold item needs its expected_answer")

    @property
    def priority(self) -> int:
        return SOURCE_PRIORITY[self.source]


MAX_VERTICES = 10_000


def _check_wkt(wkt: str) -> None:
    """A valid, non-empty point or polygon in lon/lat, of at most MAX_VERTICES vertices."""
    import shapely

    if len(wkt) > 1_000_000:
        raise InputError("geom_wkt is too long")
    try:
        geom = shapely.from_wkt(wkt)
    except shapely.errors.ShapelyError:
        raise InputError("geom_wkt is not valid WKT") from None
    if geom is None or geom.is_empty or geom.geom_type not in ("Point", "Polygon", "MultiPolygon"):
        raise InputError("geom_wkt must be a non-empty Point, Polygon or MultiPolygon")
    if shapely.get_num_coordinates(geom) > MAX_VERTICES or not geom.is_valid:
        raise InputError(f"geom_wkt must be a valid geometry of at most {MAX_VERTICES} vertices")
    x0, y0, x1, y1 = geom.bounds
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise InputError("geom_wkt must be in longitude/latitude (EPSG:4326)")


@dataclass(frozen=True)
class Reference:
    """The final (reference) answer of an item: ``mining`` / ``not_mining``, the rejection reason, and what settled
    it: ``field_check`` > ``expert`` > ``gold`` > ``votes``."""

    item_id: int
    answer: str
    reason: str | None
    via: str
