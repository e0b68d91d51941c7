"""SQL of crowd reports: add a report and its media, duplicates, the moderation queue, a decision, the approved
reports near a site, and the retention purge of personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from amberwatch.store.crowd_models import CrowdReport, CrowdReportMedia

# what moderators see (never client_ip); the public sees PUBLIC_COLUMNS only
_MODERATOR_COLUMNS = (
    "r.id, r.status, r.text, r.observed_at, r.created_at as reported_at, r.location_source,"
    " ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.moderated_by, r.moderated_at, r.reason, r.contact"
)
_PUBLIC_COLUMNS = (
    "r.id, r.status, r.text, r.observed_at, r.created_at as reported_at, r.location_source,"
    " ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.moderated_at as approved_at"
)


def add_report(session: Session, *, lon: float, lat: float, **values: Any) -> int:
    report = CrowdReport(geom=f"SRID=4326;POINT({lon!r} {lat!r})", **values)
    session.add(report)
    session.flush()
    return int(report.id)


def add_media(session: Session, report_id: int, **values: Any) -> int:
    media = CrowdReportMedia(report_id=report_id, **values)
    session.add(media)
    session.flush()
    return int(media.id)


def lock_for_duplicates(session: Session) -> None:
    """Serialise the duplicate check with concurrent inserts until the transaction ends."""
    session.execute(text("select pg_advisory_xact_lock(hashtext('amberwatch.crowd.duplicates'))"))


def duplicate_of(session: Session, *, hashes: list[str], text_hash: str, lon: float, lat: float,
                 since: datetime, within_m: float) -> int | None:
    """A report since ``since`` with one of these file hashes, or the same text within ``within_m`` metres."""
    row = session.execute(text(
        "select r.id from crowd_reports r where r.created_at >= :since and ("
        " exists (select 1 from crowd_report_media m where m.report_id = r.id and m.sha256 = any(:hashes))"
        " or (r.text_hash = :th and ST_DWithin(r.geom::geography,"
        " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m)))"
        " order by r.id limit 1"),
        {"since": since, "hashes": hashes, "th": text_hash, "lon": lon, "lat": lat, "m": within_m}).first()
    return int(row[0]) if row else None


def list_reports(session: Session, status: str, limit: int, offset: int, moderator: bool) -> list[dict[str, Any]]:
    cols = _MODERATOR_COLUMNS if moderator else _PUBLIC_COLUMNS
    order = "r.created_at, r.id" if status == "pending" else "r.created_at desc, r.id desc"
    rows = session.execute(text(
        f"select {cols} from crowd_reports r where r.status = :s order by {order} limit :l offset :o"),
        {"s": status, "l": limit, "o": offset}).mappings().all()
    return [dict(r) for r in rows]


def get_report(session: Session, report_id: int, moderator: bool) -> dict[str, Any] | None:
    cols = _MODERATOR_COLUMNS if moderator else _PUBLIC_COLUMNS
    row = session.execute(text(f"select {cols} from crowd_reports r where r.id = :id"),
                          {"id": report_id}).mappings().first()
    return dict(row) if row else None


def media_of(session: Session, report_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.execute(text(
        "select id, report_id, kind, media_type, file_name, poster_name, width, height, duration_s, gps_kept"
        " from crowd_report_media where report_id = any(:ids) order by id"), {"ids": report_ids}).mappings().all()
    return [dict(r) for r in rows]


def report_for_update(session: Session, report_id: int) -> CrowdReport | None:
    return session.scalar(select(CrowdReport).where(CrowdReport.id == report_id).with_for_update())


def near_site(session: Session, site_id: int, within_m: float, limit: int) -> list[dict[str, Any]]:
    """Approved reports within ``within_m`` metres of the site's cumulative footprint, newest first."""
    rows = session.execute(text(
        f"select {_PUBLIC_COLUMNS}, ST_Distance(r.geom::geography, s.max_geom::geography) as distance_m"
        " from crowd_reports r join sites s on s.id = :sid and s.max_geom is not null"
        " where r.status = 'approved' and ST_DWithin(r.geom::geography, s.max_geom::geography, :m)"
        " order by r.created_at desc, r.id desc limit :l"), {"sid": site_id, "m": within_m, "l": limit}
    ).mappings().all()
    return [dict(r) for r in rows]


def purge_personal(session: Session, before: datetime, now: datetime) -> int:
    """Clear the address and contact of reports made before ``before``; returns how many reports changed."""
    result = session.execute(text(
        "update crowd_reports set client_ip = null, contact = null, personal_purged_at = :now"
        " where created_at < :before and (client_ip is not null or contact is not null)"),
        {"before": before, "now": now})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_audit_addresses(session: Session, before: datetime) -> int:
    """Clear the client address of anonymous report submissions in the audit log (the same retention)."""
    result = session.execute(text(
        "update audit_log set client = null where action = 'POST /api/reports' and role is null"
        " and at < :before and client is not null"), {"before": before})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def rejected_media_before(session: Session, before: datetime) -> list[tuple[int, str, str | None]]:
    """(media id, file name, poster name) of rejected reports made before ``before``."""
    rows = session.execute(text(
        "select m.id, m.file_name, m.poster_name from crowd_report_media m join crowd_reports r on r.id = m.report_id"
        " where r.status = 'rejected' and r.created_at < :before order by m.id"), {"before": before}).all()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def delete_media(session: Session, media_ids: list[int]) -> None:
    session.execute(text("delete from crowd_report_media where id = any(:ids)"), {"ids": media_ids})


def all_file_names(session: Session) -> set[str]:
    rows = session.execute(text("select file_name, poster_name from crowd_report_media")).all()
    return {n for r in rows for n in r if n}


def counts(session: Session) -> tuple[int, int]:
    """(reports, media) rows: for checks that nothing was stored."""
    row = session.execute(text(
        "select (select count(*) from crowd_reports), (select count(*) from crowd_report_media)")).one()
    return int(row[0]), int(row[1])
