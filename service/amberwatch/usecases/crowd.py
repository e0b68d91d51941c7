"""Use cases of crowd reports (docs/operations.md#crowd-reports): submit a report with photos and videos (checked,
re-encoded, duplicates answered with the earlier report), the moderation queue and decisions, the approved
reports near a site, serving their media, and the retention purge of personal data.

Nothing of a refused report is kept: its files live in a staging folder until every file passed, and the rows and
the stored files are written together. Personal data (the sender's address, the contact) is never in a public
answer or layer and is cleared ``report_retention_days`` after the report was made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from amberwatch.crowd import MediaLimits, StoredMedia, prepare
from amberwatch.crowd.images import read_photo
from amberwatch.crowd.media import classify, sha256_of
from amberwatch.crowd.sniff import IMAGE_TYPES
from amberwatch.errors import InputError, NotFoundError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import crowd as q

log = logging.getLogger(__name__)
STATUSES = ("pending", "approved", "rejected")
DECISIONS = {"approve": "approved", "reject": "rejected"}
LOCATION_SOURCES = ("map", "gps", "exif")
MAX_TEXT = 5000
MAX_CONTACT = 200
MAX_REASON = 1000
NEAR_SITE_M = 1000.0
_FILE_NAME = re.compile(r"^[0-9a-f]{32}(?:-poster)?\.(?:jpg|mp4|webm)$")


def limits(settings: Settings) -> MediaLimits:
    return MediaLimits(max_image_bytes=settings.report_max_image_mb << 20,
                       max_image_pixels=settings.report_max_image_pixels,
                       max_video_bytes=settings.report_max_video_mb << 20, max_video_s=settings.report_max_video_s,
                       tool_timeout_s=settings.report_ffmpeg_timeout_s)


def media_dir(settings: Settings) -> Path:
    """Where the stored copies live: under the data directory, outside any served folder."""
    path = settings.path("crowd", "media", "x").parent
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_dir(settings: Settings) -> Path:
    """A fresh folder for one submission's uploads (deleted when the submission ends, stored or refused)."""
    root = settings.path("crowd", "staging", "x").parent
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="report-", dir=root))


@dataclass(frozen=True)
class Upload:
    path: Path  # in a staging folder
    name: str  # the client's file name, for messages only


@dataclass(frozen=True)
class Submitted:
    id: int
    duplicate: bool
    status: str
    location_source: str
    lon: float
    lat: float
    media: list[dict[str, Any]] = field(default_factory=list)


def normalise_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def check_fields(*, text: str, contact: str | None, lon: float | None, lat: float | None,
                 location_source: str | None) -> None:
    if not text.strip():
        raise InputError("text: say what you saw (it is empty)")
    if len(text) > MAX_TEXT:
        raise InputError(f"text: at most {MAX_TEXT} characters")
    if contact is not None and len(contact) > MAX_CONTACT:
        raise InputError(f"contact: at most {MAX_CONTACT} characters")
    if (lon is None) != (lat is None):
        raise InputError("give both lon and lat, or neither (then a photo's GPS position is used)")
    if lon is not None and lat is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError("lon must be within -180..180 and lat within -90..90 (WGS 84 degrees)")
    if location_source is not None and location_source not in ("map", "gps"):
        raise InputError("location_source: map or gps")


def submit(store: Store, settings: Settings, *, text: str, uploads: list[Upload], lon: float | None = None,
           lat: float | None = None, observed_at: datetime | None = None, contact: str | None = None,
           share_location: bool = False, location_source: str | None = None, client: str | None = None,
           now: datetime | None = None) -> Submitted:
    """Check and store a report: every file is checked before anything is kept; a duplicate (same file, or the
    same text near the same place, within ``report_duplicate_hours``) returns the earlier report instead."""
    check_fields(text=text, contact=contact, lon=lon, lat=lat, location_source=location_source)
    if not uploads:
        raise InputError("files: attach at least one photo or video")
    if len(uploads) > settings.report_max_files:
        raise InputError(f"files: at most {settings.report_max_files} per report")
    now = now or datetime.now(UTC)
    if observed_at is not None and observed_at > now + timedelta(hours=1):
        raise InputError("observed_at: in the future")
    lim = limits(settings)
    kinds = [classify(u.path, u.name, lim) for u in uploads]  # type, size, polyglot: before any decoding
    source = location_source or "map"
    if lon is None or lat is None:
        for upload, kind in zip(uploads, kinds, strict=True):
            if kind in IMAGE_TYPES and (gps := read_photo(upload.path, kind, upload.name,
                                                          lim.max_image_pixels).gps):
                lon, lat, source = gps[0], gps[1], "exif"
                break
        else:
            raise InputError("no position: give lon and lat (a map click or your device's location), "
                             "or attach a photo that has a GPS position")
    assert lon is not None and lat is not None
    hashes = [sha256_of(u.path) for u in uploads]
    text_hash = hashlib.sha256(normalise_text(text).encode()).hexdigest()
    since = now - timedelta(hours=settings.report_duplicate_hours)
    def earlier_report(session: Any) -> int | None:
        return q.duplicate_of(session, hashes=hashes, text_hash=text_hash, lon=lon, lat=lat, since=since,
                              within_m=settings.report_duplicate_m)

    with store.session() as session:
        earlier = earlier_report(session)
    if earlier is not None:
        return _duplicate(store, earlier)

    out_dir = uploads[0].path.parent / "out"
    out_dir.mkdir(exist_ok=True)
    stored = [prepare(u.path, u.name, kind, digest, out_dir, lim, share_location)
              for u, kind, digest in zip(uploads, kinds, hashes, strict=True)]
    target = media_dir(settings)
    moved: list[Path] = []
    try:
        with store.session() as session:
            q.lock_for_duplicates(session)
            earlier = earlier_report(session)
            if earlier is not None:
                report_id, duplicate = earlier, True
            else:
                duplicate = False
                report_id = q.add_report(session, lon=lon, lat=lat, location_source=source, text=text.strip(),
                                         text_hash=text_hash, observed_at=observed_at, created_at=now,
                                         status="pending", contact=(contact or "").strip() or None,
                                         client_ip=client)
                for m in stored:
                    q.add_media(session, report_id, kind=m.kind, media_type=m.media_type, file_name=m.file_name,
                                poster_name=m.poster_name, sha256=m.sha256, bytes=m.bytes, width=m.width,
                                height=m.height, duration_s=m.duration_s, gps_kept=m.gps_kept)
                    for name in filter(None, (m.file_name, m.poster_name)):
                        os.replace(out_dir / name, target / name)
                        moved.append(target / name)
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    if duplicate:
        return _duplicate(store, report_id)
    return Submitted(report_id, False, "pending", source, lon, lat, [_media_summary(m) for m in stored])


def _media_summary(m: StoredMedia) -> dict[str, Any]:
    return {"kind": m.kind, "media_type": m.media_type, "width": m.width, "height": m.height,
            "duration_s": m.duration_s, "gps_kept": m.gps_kept}


def _duplicate(store: Store, report_id: int) -> Submitted:
    with store.session() as session:
        row = q.get_report(session, report_id, moderator=False)
    assert row is not None
    return Submitted(report_id, True, str(row["status"]), str(row["location_source"]), float(row["lon"]),
                     float(row["lat"]))


def discard_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- reading ------------------------------------------------------------------------------------------
def check_status(status: str) -> str:
    if status not in STATUSES:
        raise InputError(f"status: one of {', '.join(STATUSES)}")
    return status


def _with_media(session: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    media = q.media_of(session, [r["id"] for r in rows])
    for row in rows:
        row["media"] = [
            {"id": m["id"], "kind": m["kind"], "media_type": m["media_type"], "width": m["width"],
             "height": m["height"], "duration_s": m["duration_s"], "gps_kept": m["gps_kept"],
             "url": f"/api/reports/{row['id']}/media/{m['id']}",
             "poster_url": f"/api/reports/{row['id']}/media/{m['id']}/poster" if m["poster_name"] else None}
            for m in media if m["report_id"] == row["id"]]
    return rows


def list_reports(store: Store, status: str, limit: int, offset: int, moderator: bool) -> list[dict[str, Any]]:
    """Approved reports for everyone; pending and rejected ones (with contact and reason) for moderators only
    (the caller checks the permission)."""
    check_status(status)
    with store.session() as session:
        return _with_media(session, q.list_reports(session, status, limit, offset, moderator))


def get_report(store: Store, report_id: int, moderator: bool) -> dict[str, Any]:
    """One report: moderators see any; everyone else only approved ones (others are a 404, as if absent)."""
    with store.session() as session:
        row = q.get_report(session, report_id, moderator)
        if row is None or (not moderator and row["status"] != "approved"):
            raise NotFoundError(f"no public report {report_id}")
        return _with_media(session, [row])[0]


def media_file(store: Store, settings: Settings, report_id: int, media_id: int, poster: bool,
               moderator: bool) -> tuple[Path, str]:
    """The stored file (or video poster) of an approved report (any report for moderators) and its type."""
    get_report(store, report_id, moderator)  # 404 unless approved (or a moderator asks)
    with store.session() as session:
        media = [m for m in q.media_of(session, [report_id]) if m["id"] == media_id]
    if not media:
        raise NotFoundError(f"report {report_id} has no media {media_id}")
    m = media[0]
    name = m["poster_name"] if poster else m["file_name"]
    if not name or not _FILE_NAME.match(name):
        raise NotFoundError(f"media {media_id} has no poster" if poster else f"no media {media_id}")
    path = media_dir(settings) / name
    if not path.is_file():
        raise NotFoundError(f"the file of media {media_id} is no longer kept")
    return path, "image/jpeg" if poster else str(m["media_type"])


def near_site(store: Store, site_id: int, within_m: float = NEAR_SITE_M, limit: int = 20) -> list[dict[str, Any]]:
    """Approved reports within ``within_m`` metres of a site (for its page), newest first."""
    with store.session() as session:
        return _with_media(session, q.near_site(session, site_id, within_m, limit))


# -- moderation -----------------------------------------------------------------------------------------
def moderate(store: Store, settings: Settings, report_id: int, decision: str, reason: str | None,
             moderator: str) -> dict[str, Any]:
    """Approve (the report becomes public in the ``reports`` layer and on nearby site pages) or reject (a reason is
    required; kept, never public). A decision may be changed later by another decision."""
    if decision not in DECISIONS:
        raise InputError("decision: approve or reject")
    reason = (reason or "").strip() or None
    if decision == "reject" and reason is None:
        raise InputError("reason: say why the report is rejected (required for reject)")
    if reason is not None and len(reason) > MAX_REASON:
        raise InputError(f"reason: at most {MAX_REASON} characters")
    with store.session() as session:
        report = q.report_for_update(session, report_id)
        if report is None:
            raise NotFoundError(f"no report {report_id}")
        report.status = DECISIONS[decision]
        report.reason = reason
        report.moderated_by = moderator
        report.moderated_at = datetime.now(UTC)
    _refresh_layers(store, settings)
    return get_report(store, report_id, moderator=True)


def _refresh_layers(store: Store, settings: Settings) -> None:
    """The ``reports`` layer reads a live view; a refresh updates its extent and time span in the capabilities."""
    from amberwatch import publish

    try:
        publish.refresh(store, settings)
    except Exception:  # the decision is stored; stale capabilities are not a reason to fail it
        log.exception("could not refresh the OGC layers after a moderation decision")


# -- retention -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Purged:
    reports: int  # reports whose address and contact were cleared
    media: int  # files of rejected reports deleted
    before: datetime


def purge(store: Store, settings: Settings, now: datetime | None = None) -> Purged:
    """Clear the address and contact of reports older than ``report_retention_days`` (and the address in the audit
    records of anonymous submissions), and delete the photos and videos of rejected reports that old (the report
    and its rejection reason stay)."""
    now = now or datetime.now(UTC)
    before = now - timedelta(days=settings.report_retention_days)
    root = media_dir(settings)
    with store.session() as session:
        n = q.purge_personal(session, before, now)
        q.purge_audit_addresses(session, before)
        media = q.rejected_media_before(session, before)
        q.delete_media(session, [m[0] for m in media])
    for _, name, poster in media:
        for file_name in filter(None, (name, poster)):
            if _FILE_NAME.match(file_name):
                (root / file_name).unlink(missing_ok=True)
    log.info("purged personal data of %d reports, %d media of rejected reports (made before %s)", n, len(media),
             before.isoformat(timespec="seconds"))
    return Purged(n, len(media), before)
