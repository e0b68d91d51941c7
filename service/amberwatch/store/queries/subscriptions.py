"""SQL of the alerts: subscriptions to an area, the scan of published runs against them, webhook deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from amberwatch.store.models import AlertDelivery, AlertSubscription
from amberwatch.store.queries.events import EVENT_COLUMNS


def admin_unit_wkt(session: Session, kind: str, name: str) -> tuple[str, str] | None:
    """(the unit's exact name, its geometry as WKT) for an admin unit matched by name, case-insensitively."""
    row = session.execute(text(
        "select name, ST_AsText(ST_Multi(geom)) as wkt from admin_units where kind = :kind and lower(name) = lower(:n)"
        " order by id limit 1"), {"kind": kind, "n": name}).first()
    return (row.name, row.wkt) if row else None


def polygon_check(session: Session, geojson: str) -> dict[str, Any]:
    """Validity, geodesic area (ha) and vertex count of a GeoJSON (multi)polygon, and its MULTIPOLYGON WKT."""
    row = session.execute(text(
        "with g as (select ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326) as g)"
        " select ST_IsValid(g) as valid, ST_Area(g::geography) / 10000 as area_ha, ST_NPoints(g) as points,"
        " ST_AsText(ST_Multi(g)) as wkt, ST_XMin(g) as x0, ST_YMin(g) as y0, ST_XMax(g) as x1, ST_YMax(g) as y1"
        " from g"), {"g": geojson}).mappings().one()
    return dict(row)


def add(session: Session, **values: Any) -> AlertSubscription:
    wkt = values.pop("area_wkt")
    row = AlertSubscription(area=f"SRID=4326;{wkt}", **values)
    session.add(row)
    session.flush()
    return row


def get(session: Session, subscription_id: str) -> AlertSubscription | None:
    return session.get(AlertSubscription, subscription_id)


def area_geojson(session: Session, subscription_id: str) -> str | None:
    return session.scalar(text("select ST_AsGeoJSON(area, 7) from alert_subscriptions where id = :id"),
                          {"id": subscription_id})


def count_active_for_client(session: Session, client: str) -> int:
    return int(session.scalar(text(
        "select count(*) from alert_subscriptions where active and client = :c"), {"c": client}) or 0)


def area_events(session: Session, subscription_id: str, limit: int) -> list[dict]:
    """The newest recorded events of live sites inside the subscription's area (rows as the events API lists)."""
    rows = session.execute(text(
        f"select {EVENT_COLUMNS}, ST_AsGeoJSON(e.geom, 7) as geometry from events e"
        " join sites s on s.id = e.site_id join runs r on r.id = e.run_id and r.state = 'published'"
        " join alert_subscriptions a on a.id = :id and ST_Intersects(e.geom, a.area)"
        " where s.merged_into_id is null and (a.statuses is null or e.to_status = any(a.statuses))"
        " order by e.created_at desc, e.id desc limit :limit"), {"id": subscription_id, "limit": limit}).mappings()
    return [dict(r) for r in rows]


def claim_unscanned_runs(session: Session) -> list[dict]:
    """Mark every published run not yet scanned as scanned and return it (id, published_at): a run is matched
    against the subscriptions once, by whichever scan claims it first (the others skip it)."""
    rows = session.execute(text(
        "insert into alert_scans (run_id) select id from runs where state = 'published'"
        " and id not in (select run_id from alert_scans) order by id"
        " on conflict (run_id) do nothing returning run_id")).all()
    ids = [r.run_id for r in rows]
    if not ids:
        return []
    return [dict(r) for r in session.execute(text(
        "select id, published_at from runs where id = any(:ids) order by id"), {"ids": ids}).mappings()]


def has_unscanned_runs(session: Session) -> bool:
    return bool(session.scalar(text(
        "select exists (select 1 from runs r where r.state = 'published'"
        " and not exists (select 1 from alert_scans a where a.run_id = r.id))")))


def matches(session: Session, run_id: int) -> list[dict]:
    """For one run: each active subscription (created before the run was published) with the run's events inside
    its area, as rows (subscription_id, event rows)."""
    rows = session.execute(text(
        f"select a.id as subscription_id, {EVENT_COLUMNS}, ST_X(e.geom) as lon, ST_Y(e.geom) as lat"
        " from alert_subscriptions a join runs r on r.id = :run"
        " join events e on e.run_id = r.id and ST_Intersects(e.geom, a.area)"
        " join sites s on s.id = e.site_id"
        " where a.active and a.webhook_url is not null and a.created_at <= coalesce(r.published_at, now())"
        " and (a.statuses is null or e.to_status = any(a.statuses))"
        " order by a.id, e.id"), {"run": run_id}).mappings().all()
    out: dict[str, list[dict]] = {}
    for r in rows:
        d = dict(r)
        out.setdefault(d.pop("subscription_id"), []).append(d)
    return [{"subscription_id": k, "events": v} for k, v in out.items()]


def add_delivery(session: Session, subscription_id: str, run_id: int, event_ids: list[int]) -> AlertDelivery | None:
    """A pending delivery, or None when this subscription already has one for this run."""
    new_id = session.scalar(text(
        "insert into alert_deliveries (subscription_id, run_id, event_ids, body) values (:s, :r, :e, '')"
        " on conflict on constraint alert_deliveries_once do nothing returning id"),
        {"s": subscription_id, "r": run_id, "e": event_ids})
    return session.get(AlertDelivery, new_id) if new_id is not None else None


def delivery_for_update(session: Session, delivery_id: int) -> AlertDelivery | None:
    return session.scalar(select(AlertDelivery).where(AlertDelivery.id == delivery_id).with_for_update())


def pending_deliveries(session: Session, older_than_s: float) -> list[int]:
    """Pending deliveries created more than ``older_than_s`` ago (their job was lost: queue them again)."""
    return list(session.scalars(text(
        "select id from alert_deliveries where state = 'pending'"
        " and created_at < now() - make_interval(secs => :s) order by id"), {"s": older_than_s}))


def deliveries(session: Session, subscription_id: str) -> list[AlertDelivery]:
    return list(session.scalars(select(AlertDelivery).where(AlertDelivery.subscription_id == subscription_id)
                                .order_by(AlertDelivery.id)))


def now() -> datetime:
    return datetime.now(UTC)
