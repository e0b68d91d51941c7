"""ORM tables of crowd reports (migration 0008): the report with its personal data, and its checked media."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from amberwatch.store.models import Base


class CrowdReport(Base):
    """A report sent through ``POST /api/reports``: pending until a moderator approves or rejects it.

    ``client_ip`` and ``contact`` are personal data: never in a public answer or layer, cleared by the purge."""

    __tablename__ = "crowd_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    location_source: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending", index=True)
    moderated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    moderated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    contact: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    personal_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CrowdReportMedia(Base):
    """One photo (re-encoded JPEG) or video (remuxed without metadata, with a JPEG poster) of a report."""

    __tablename__ = "crowd_report_media"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("crowd_reports.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    media_type: Mapped[str] = mapped_column(String(40))
    file_name: Mapped[str] = mapped_column(String(80), unique=True)
    poster_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the file as uploaded (duplicate detection)
    bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    gps_kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
